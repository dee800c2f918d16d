import pytest
import torch

from models import build_model, cam_layer


@pytest.mark.parametrize("name", ["resnet", "smallcnn"])
@pytest.mark.parametrize("size,classes", [(32, 10), (64, 200)])
def test_shapes(name, size, classes):
    model = build_model(name, classes, image_size=size).eval()
    assert model(torch.rand(2, 3, size, size)).shape == (2, classes)
    assert isinstance(cam_layer(model), torch.nn.Module)


def test_wideresnet_shape_and_cam_layer():
    model = build_model("wideresnet", 10).eval()
    assert model(torch.rand(1, 3, 32, 32)).shape == (1, 10)
    assert model.cam_layer == "block3"


def test_unknown_model():
    with pytest.raises(ValueError):
        build_model("vgg", 10)
