"""PART-M: MART for --warm-up epochs, then MART on pixel-reweighted adversarial examples (epsilon on
the CAM's important pixels, --low-epsilon elsewhere), then natural / PGD-20 / MMA / AutoAttack accuracy.
--no-reweight trains the MART baseline; --beta (6.0) weighs MART's KL term.

The official defaults: ResNet-18 on CIFAR-10, 80 epochs of which 20 warm-up, batch 128, SGD lr 0.01
(x0.1 from post-warm-up epoch 60), epsilon 8/255, --low-epsilon 7/255, 10 attack steps of 2/255, the
batch's GradCAM. The step of a batch is utils/recipe.py (train_batch); every flag is declared in
utils/args.py (a mask rule's in utils/rules.py, a method's and a step wrapper's in utils/methods.py).

    python train_eval_part_m.py --help      # the flags by section: training, PART, evaluation, running
"""
import sys

from utils.cli import main

if __name__ == "__main__":
    sys.exit(main("part_m"))
