#!/usr/bin/env bash
# CPU demonstration on the shared JPEG CIFAR-10 (small CNN, 2,000 training images, budget 2/255):
# shows what the outputs look like; not a reproduction of the paper (see the main README).
set -euo pipefail
cd "$(dirname "$0")/../.."
common=(--model smallcnn --data-dir ../shared/data/cifar10-jpeg.zip --no-download --train-subset 2000
        --test-subset 500 --epochs 8 --warm-up 4 --lr 0.02 --batch-size 32 --num-steps 3
        --epsilon 2/255 --low-epsilon 1/255 --step-size 1/255 --eval-epsilon 2/255
        --eval natural,pgd20,mma,aa --eval-every 2 --eval-subset 500 --no-progress --log-interval 1000)
out=results/cpu-demo
python train_eval_part.py "${common[@]}" --no-reweight --model-dir /tmp/cpu-demo/at \
    --results $out/at_seed1.json 2>&1 | tee $out/at_seed1.log
python train_eval_part.py "${common[@]}" --save-masks 8 --model-dir /tmp/cpu-demo/part \
    --results $out/part_seed1.json 2>&1 | tee $out/part_seed1.log
cp /tmp/cpu-demo/part/masks_epoch8.png $out/part_seed1_masks_epoch8.png
python -m utils.report $out/at_seed1.json $out/part_seed1.json -o $out
