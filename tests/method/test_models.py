import pytest
import torch

from models.zoo import build_model, cam_layer, eval_mode


@pytest.mark.parametrize("name", ["resnet", "smallcnn", "smallcnn-bn"])
@pytest.mark.parametrize("size,classes", [(32, 10), (64, 200)])
def test_features_then_head_is_the_forward(name, size, classes):
    """The split the CAM relies on: head(features(x)) is model(x), and features(x) is the CAM
    layer's output (what a forward hook on that layer would see)."""
    torch.manual_seed(0)
    model = build_model(name, classes, image_size=size).eval()
    x = torch.rand(2, 3, size, size)
    seen = []
    handle = cam_layer(model).register_forward_hook(lambda _m, _i, out: seen.append(out))
    try:
        out = model(x)
    finally:
        handle.remove()
    feats = model.features(x)
    assert out.shape == (2, classes)
    assert torch.equal(feats, seen[0]) and torch.equal(model.head(feats), out)


def test_wideresnet_split_and_cam_layer():
    torch.manual_seed(0)
    model = build_model("wideresnet", 10).eval()
    x = torch.rand(1, 3, 32, 32)
    feats = model.features(x)
    assert model.cam_layer == "block3" and feats.shape == (1, 640, 8, 8)
    assert torch.equal(model.head(feats), model(x))


def test_eval_mode_restores_the_mode_also_after_an_error():
    model = build_model("smallcnn", 10).train()
    with pytest.raises(RuntimeError):
        with eval_mode(model):
            assert not model.training and not model.classifier[2].training
            raise RuntimeError("inside")
    assert model.training and model.classifier[2].training
    model.eval()
    with eval_mode(model):
        pass
    assert not model.training


def test_unknown_model():
    with pytest.raises(ValueError):
        build_model("vgg", 10)
