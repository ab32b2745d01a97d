# keras-layer-notes.md, "Flatten layer & Dense layer": Dense as the first layer
from keras.models import Sequential
from keras.layers import Dense

# as first layer in a sequential model:
model = Sequential()
model.add(Dense(32, input_shape=(16,)))
# now the model will take as input arrays of shape (*, 16)
# and output arrays of shape (*, 32)

# after the first layer, you don't need to specify
# the size of the input anymore:
model.add(Dense(32))
