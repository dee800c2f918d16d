"""What PART reads of a batch before it attacks it: the importance maps (`cam/maps.py`: CAMs, input
gradients, a dataset's boxes; `cam/backend.py`: the grad-cam package's CAMs) and the mask rules that
turn a map into the per-pixel budget (`cam/rules.py`). Both registries are torch-free at import."""
