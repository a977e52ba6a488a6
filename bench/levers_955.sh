#!/bin/bash
# The 9-5-5's training levers on a shortened x2 recipe (bench/README.md, "The 9-5-5's training cost"):
# T91 without flips/rotations and HR scales, 20 epochs, Set5 as the validation split; one DVC experiment per
# lever (patch size, stride scaled so each output pixel is covered as often, precision, batch size). Run from
# the project root with T91 in data/T91 and Set5 in data/benchmarks/Set5; prints each run's train time and
# Set5 figures.
#
#   bench/levers_955.sh                      the four runs of 2026-12-02 (33 and 44 pixels, float32 and bf16)
#   bench/levers_955.sh "q44e 44 23 false 47" ...   runs of your own: name, patches.size, patches.stride,
#                                            train.mixed_precision, train.batch_size[, seed (default: params.yaml's)]
#
# A batch of 47 44x44 patches holds as many output pixels (47 x 28^2) as 128 33x33 ones (128 x 17^2), so
# such a run takes as many optimizer steps per epoch, each over as many output pixels, as the 33x33 one.
set -euo pipefail
export PATH=$PWD/.venv/bin:$PATH
common=(-S download.source=folder -S download.train_dir=data/T91 -S download.valid_dir=data/benchmarks/Set5
  -S patches.flips_rotations=false -S 'patches.hr_scales=[1.0]' -S 'model.kernel_sizes=[9,5,5]'
  -S train.epochs=20 -S 'evaluate.benchmarks=[Set5]' -S 'export.formats=[onnx]' -S scale=2)
runs=("$@")
[ ${#runs[@]} -gt 0 ] || runs=("q33f 33 14 false 128" "q33b 33 14 true 128" "q44f 44 23 false 128" "q44b 44 23 true 128")
for run in "${runs[@]}"; do
  set -- $run
  dvc exp run -n "$1" "${common[@]}" -S patches.size=$2 -S patches.stride=$3 -S train.mixed_precision=$4 \
    -S train.batch_size=$5 ${6:+-S seed=$6}
  python -c "import json; t = json.load(open('metrics/train.json')); e = json.load(open('metrics/evaluate.json'))
print('$1', t['seconds'], 's', t['patches'], 'patches', t['output_mpix_per_second'], 'Mpix/s', e['Set5'])"
done
