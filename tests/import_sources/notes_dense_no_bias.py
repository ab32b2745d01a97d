# keras-layer-notes.md, "BatchNormalization layer": `bias=False`
from keras.models import Sequential
from keras.layers import Dense

model = Sequential()
model.add(Dense(64, input_dim=16))
model.add(Dense(64, bias=False))
