# The book's ch06/batch_norm_gradient_check.py ("Deep Learning from Scratch", Koki
# Saitoh).  NOT quoted in the project's seeds: written out from the book's text, to be
# checked against the published file; changes: README.md in this folder.
# ruff: noqa
# coding: utf-8
import sys, os
sys.path.append(os.pardir)  # 親ディレクトリのファイルをインポートするための設定
import numpy as np
from fastnet.bench.book import load_mnist  # book: from dataset.mnist import load_mnist
from fastnet.nets import MultiLayerNetExtend  # book: from common.multi_layer_net_extend import MultiLayerNetExtend

# データの読み込み
(x_train, t_train), (x_test, t_test) = load_mnist(normalize=True, one_hot_label=True)

network = MultiLayerNetExtend(input_size=784, hidden_size_list=[100, 100], output_size=10,
                              use_batchnorm=True)

x_batch = x_train[:1]
t_batch = t_train[:1]

grad_backprop = network.gradient(x_batch, t_batch)
grad_numerical = network.numerical_gradient(x_batch, t_batch)


for key in grad_numerical.keys():
    diff = np.average( np.abs(grad_backprop[key] - grad_numerical[key]) )
    print(key + ":" + str(diff))
