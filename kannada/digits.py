"""What every part of kannada agrees on about a digit image."""

IMAGE_SIDE = 28  # Kannada-MNIST images are 28 x 28 pixels
NUM_CLASSES = 10  # the digits 0 to 9
INPUT_SHAPE = (1, IMAGE_SIDE, IMAGE_SIDE)  # one image as the network takes it: NCHW, no batch axis
