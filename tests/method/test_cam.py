"""The native batched CAM against the grad-cam package, and its hygiene (hooks, mode, gradients)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pytorch_grad_cam import GradCAM, LayerCAM, XGradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from cam.maps import compute_cam, minmax_normalise
from models.zoo import build_model, cam_layer
from tests.conftest import trained_a_little

LIBRARY = {"gradcam": GradCAM, "xgradcam": XGradCAM, "layercam": LayerCAM}


def _as_library_does(cam: torch.Tensor, size: int) -> np.ndarray:
    # grad-cam: min-max, cv2 bilinear resize to the input size, min-max again.
    up = F.interpolate(cam[:, None], size=(size, size), mode="bilinear", align_corners=False)[:, 0]
    return minmax_normalise(up).numpy()


def _library(model, x, method, classes) -> np.ndarray:
    with LIBRARY[method](model=model, target_layers=[cam_layer(model)]) as lib:
        return lib(input_tensor=x, targets=[ClassifierOutputTarget(int(c)) for c in classes])


# WRN's head adds BN and ReLU after the CAM layer (the native CAM must run them as the package's hooks see them).
@pytest.mark.parametrize("model_name", ["resnet", "smallcnn", "smallcnn-bn", "wideresnet"])
@pytest.mark.parametrize("method", ["gradcam", "xgradcam", "layercam"])
def test_matches_pytorch_grad_cam(model_name, method):
    model = trained_a_little(model_name)
    torch.manual_seed(1)
    x = torch.rand(6, 3, 32, 32)
    ours = compute_cam(model, x, method)
    with torch.no_grad():
        pred = model(x).argmax(1)
    ref = _library(model, x, method, pred)
    assert ours.dim() == 3 and ours.shape[0] == 6
    assert float(ours.min()) >= 0 and float(ours.max()) <= 1
    assert (ref.reshape(6, -1).max(1) > 0).all()        # maps with content, so the comparison can fail
    np.testing.assert_allclose(_as_library_does(ours, 32), ref, atol=1e-4)


@pytest.mark.parametrize("model_name,size,hw", [("resnet", 32, 4), ("resnet", 64, 8), ("smallcnn", 32, 10),
                                                  ("smallcnn-bn", 32, 8)])
def test_shapes_over_inputs(model_name, size, hw):
    model = build_model(model_name, 10, image_size=size)
    cam = compute_cam(model, torch.rand(3, 3, size, size), "gradcam")
    assert cam.shape == (3, hw, hw)


def test_hooks_released_mode_restored_no_weight_grads():
    model = build_model("smallcnn", 10).train()
    layer = cam_layer(model)
    compute_cam(model, torch.rand(4, 3, 32, 32), "layercam")
    assert model.training
    assert not layer._forward_hooks and not layer._backward_hooks
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("method", ["gradcam", "layercam"])
def test_explicit_targets_are_the_maps_class(method):
    """`targets` picks the class whose map is made: the package's map of that class, not the predicted one's."""
    model = trained_a_little("smallcnn")
    torch.manual_seed(2)
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        other = (model(x).argmax(1) + 1) % 10
    given = compute_cam(model, x, method, targets=other)
    np.testing.assert_allclose(_as_library_does(given, 32), _library(model, x, method, other), atol=1e-4)
    assert not torch.allclose(given, compute_cam(model, x, method), atol=1e-3)


def test_constant_map_normalises_to_zeros():
    flat = minmax_normalise(torch.full((2, 4, 4), 0.7))
    assert torch.equal(flat, torch.zeros(2, 4, 4))


def test_unknown_method():
    with pytest.raises(ValueError):
        compute_cam(build_model("smallcnn", 10), torch.rand(1, 3, 32, 32), "nocam")
