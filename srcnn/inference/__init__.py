"""Running a trained network: the one engine (tiles, colour) and the runtimes behind it (Keras, ONNX Runtime,
LiteRT, OpenCV dnn, SavedModel). Never imports training."""
