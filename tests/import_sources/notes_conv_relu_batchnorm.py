# keras-layer-notes.md, "BatchNormalization layer": the helper, used on a 3x32x32 image
from keras.layers import Activation, BatchNormalization, Convolution2D, Input
from keras.models import Model


def Conv2DReluBatchNorm(n_filter, w_filter, h_filter, inputs):
    return BatchNormalization()(Activation(activation='relu')(Convolution2D(n_filter, w_filter, h_filter, border_mode='same')(inputs)))


image = Input(shape=(3, 32, 32))
x = Conv2DReluBatchNorm(64, 3, 3, image)
x = Conv2DReluBatchNorm(32, 3, 3, x)
model = Model(input=image, output=x)
