"""PART (Zhang et al., ICML 2024): PGD-AT for --warm-up epochs, then PART — PGD-AT on adversarial
examples whose budget is epsilon on the pixels the batch's own CAM marks important and --low-epsilon
elsewhere — then natural / PGD-20 / MMA / AutoAttack accuracy. --no-reweight trains the AT baseline.

The official defaults: ResNet-18 on CIFAR-10, 80 epochs of which 20 warm-up, batch 128, SGD lr 0.01
(x0.1 from post-warm-up epoch 60), epsilon 8/255, --low-epsilon 7/255, 10 attack steps of 2/255, the
batch's GradCAM. The step of a batch is utils/recipe.py (train_batch); every flag is declared in
utils/args.py (a mask rule's in utils/rules.py, a method's and a step wrapper's in utils/methods.py).

    python train_eval_part.py --help      # the flags by section: training, PART, evaluation, running
"""
import sys

from utils.cli import main

if __name__ == "__main__":
    sys.exit(main("part"))
