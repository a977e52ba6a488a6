#!/bin/bash
# The 9-5-5's training levers on a shortened x2 recipe (bench/README.md, "The 9-5-5's training cost"):
# T91 without flips/rotations and HR scales, 20 epochs, Set5 as the validation split; one DVC experiment per
# lever (patch size, stride scaled so each output pixel is covered as often, precision). Run from the project
# root with T91 in data/T91 and Set5 in data/benchmarks/Set5; prints each run's train time and Set5 figures.
set -euo pipefail
export PATH=$PWD/.venv/bin:$PATH
common=(-S download.source=folder -S download.train_dir=data/T91 -S download.valid_dir=data/benchmarks/Set5
  -S patches.flips_rotations=false -S 'patches.hr_scales=[1.0]' -S 'model.kernel_sizes=[9,5,5]'
  -S train.epochs=20 -S 'evaluate.benchmarks=[Set5]' -S 'export.formats=[onnx]' -S scale=2)
for run in "q33f 33 14 false" "q33b 33 14 true" "q44f 44 23 false" "q44b 44 23 true"; do
  set -- $run
  dvc exp run -n "$1" "${common[@]}" -S patches.size=$2 -S patches.stride=$3 -S train.mixed_precision=$4
  python -c "import json; t = json.load(open('metrics/train.json')); e = json.load(open('metrics/evaluate.json'))
print('$1', t['seconds'], 's', t['patches'], 'patches', e['Set5'])"
done
