"""Every flag of the official scripts (JiachengZ01/PART's train_eval_part.py, _t.py, _m.py) with the
official values runs here, or is refused in one line that says what to use instead."""
import pytest

from runner.cli.args import get_args

# The official scripts' whole flag lists, each flag at its official default (as a user would write it).
OFFICIAL_COMMON = ["--batch-size", "128", "--epochs", "80", "--weight-decay", "2e-4", "--lr", "0.01",
                   "--momentum", "0.9", "--no-cuda", "--epsilon", "8/255", "--low-epsilon", "7/255",
                   "--num-steps", "10", "--num-class", "10", "--step-size", "2/255", "--adjust-first", "60",
                   "--adjust-second", "90", "--rand_init", "True", "--seed", "1", "--log-interval", "100",
                   "--save-freq", "10", "--save-weights", "1", "--data", "CIFAR10", "--model", "resnet",
                   "--warm-up", "20", "--cam", "gradcam", "--attack", "pgd"]
OFFICIAL = {"part": [*OFFICIAL_COMMON, "--pre-trained", "False", "--model-dir", "./checkpoint/ResNet_18/PART"],
            "part_t": [*OFFICIAL_COMMON, "--beta", "6.0", "--model-dir", "./checkpoint/ResNet_18/PART_T"],
            "part_m": [*OFFICIAL_COMMON, "--beta", "6.0", "--model-dir", "./checkpoint/ResNet_18/PART_M"]}


@pytest.mark.parametrize("script", OFFICIAL)
def test_each_official_command_line_runs_with_the_official_values(script):
    args = get_args(script, OFFICIAL[script])
    assert (args.batch_size, args.epochs, args.lr, args.num_steps, args.warm_up, args.cam, args.attack) == \
        (128, 80, 0.01, 10, 20, "gradcam", "pgd")
    assert args.epsilon == 8 / 255 and args.low_epsilon == 7 / 255 and args.rand_init is True
    assert args.device == "cpu" and args.num_class == 10 and args.model_dir == OFFICIAL[script][-1]
    assert get_args(script, OFFICIAL[script]).__dict__.keys() == get_args(script, []).__dict__.keys()


@pytest.mark.parametrize("script,argv,words", [
    ("part", ["--pre-trained", "True"], ["weighted_eps_list.npz", "--cam-refresh official"]),
    ("part_t", ["--attack", "mma"], ["train_eval_part.py", "TRADES"]),
    ("part_m", ["--attack", "mma"], ["train_eval_part.py", "MART"]),
])
def test_the_official_flags_without_their_meaning_here_are_one_line(script, argv, words, capsys):
    with pytest.raises(SystemExit) as exc:
        get_args(script, argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1, err
    for w in words:
        assert w in err, err
