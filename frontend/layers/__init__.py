"""kc.layers: Keras 3 layers (one small module per family)."""
from .base import Layer
from .input_layer import Input, InputLayer
from .core import Activation, Dense, Dropout, Embedding, Flatten, Masking, Reshape, Rescaling
from .conv import Conv1D, Conv2D, Conv3D, DepthwiseConv2D, SeparableConv2D
from .conv_transpose import Conv1DTranspose, Conv2DTranspose, Conv3DTranspose
from .conv_lstm import ConvLSTM1D, ConvLSTM2D, ConvLSTM3D
from .pooling import (AveragePooling1D, AveragePooling2D, AvgPool1D, AvgPool2D, GlobalAveragePooling1D,
                      GlobalAveragePooling2D, GlobalAvgPool1D, GlobalAvgPool2D, GlobalMaxPool1D, GlobalMaxPool2D,
                      GlobalMaxPooling1D, GlobalMaxPooling2D, MaxPool1D, MaxPool2D, MaxPooling1D, MaxPooling2D)
from .pooling import (AveragePooling3D, AvgPool3D, GlobalAveragePooling3D, GlobalAvgPool3D, GlobalMaxPool3D,
                      GlobalMaxPooling3D, MaxPool3D, MaxPooling3D)
from .recurrent import GRU, LSTM, SimpleRNN
from .bidirectional import Bidirectional
from .rnn import RNN, GRUCell, LSTMCell, SimpleRNNCell, StackedRNNCells
from .time_distributed import TimeDistributed
from .normalization import BatchNormalization, LayerNormalization
from .normalization import GroupNormalization, UnitNormalization
from .regularization import (ActivityRegularization, GaussianDropout, GaussianNoise, SpatialDropout1D,
                             SpatialDropout2D, SpatialDropout3D)
from .image_preprocessing import CenterCrop, Resizing
from .augmentation import (RandomBrightness, RandomContrast, RandomCrop, RandomFlip, RandomRotation, RandomTranslation,
                           RandomZoom)
from .merging import Add, Average, Concatenate, Maximum, Minimum, Multiply, Subtract
from .activation_layers import ELU, Identity, Lambda, LeakyReLU, ReLU, Softmax
from .einsum_dense import EinsumDense
from .attention import MultiHeadAttention
from .dot_attention import AdditiveAttention, Attention
from .reshaping import (Cropping1D, Cropping2D, Permute, RepeatVector, UpSampling1D, UpSampling2D, ZeroPadding1D,
                        ZeroPadding2D)
from .reshaping import Cropping3D, UpSampling3D, ZeroPadding3D
from .preprocessing_numeric import CategoryEncoding, Discretization, Normalization
from .index_lookup import IntegerLookup, StringLookup
from .text_vectorization import TextVectorization
from .hashing import Hashing

Convolution1D, Convolution2D, Convolution3D = Conv1D, Conv2D, Conv3D
Convolution1DTranspose, Convolution2DTranspose = Conv1DTranspose, Conv2DTranspose
Convolution3DTranspose = Conv3DTranspose


def add(inputs, **kwargs):
    return Add(**kwargs)(inputs)


def subtract(inputs, **kwargs):
    return Subtract(**kwargs)(inputs)


def multiply(inputs, **kwargs):
    return Multiply(**kwargs)(inputs)


def average(inputs, **kwargs):
    return Average(**kwargs)(inputs)


def maximum(inputs, **kwargs):
    return Maximum(**kwargs)(inputs)


def minimum(inputs, **kwargs):
    return Minimum(**kwargs)(inputs)


def concatenate(inputs, axis=-1, **kwargs):
    return Concatenate(axis=axis, **kwargs)(inputs)


BUILTIN_LAYERS = {name: obj for name, obj in dict(globals()).items()
                  if isinstance(obj, type) and issubclass(obj, Layer)}
