# keras-layer-notes.md, "pad_sequences & Masking layer"
from keras.models import Sequential
from keras.layers import LSTM, Masking

timesteps = 10
features = 8

model = Sequential()
model.add(Masking(mask_value=0., input_shape=(timesteps, features)))
model.add(LSTM(32))
