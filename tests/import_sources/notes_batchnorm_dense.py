# keras-layer-notes.md, "BatchNormalization layer" (the notes' lines, after `model = Sequential()`)
from keras.models import Sequential
from keras.layers import Dense, BatchNormalization, Activation

model = Sequential()
model.add(Dense(100,input_dim=20))
model.add(BatchNormalization())
model.add(Activation('relu'))
