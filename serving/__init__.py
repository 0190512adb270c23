"""mlserve model server: one ONNX model behind Azure ML, SageMaker and KServe v2 protocols."""

__version__ = "0.1.0"
