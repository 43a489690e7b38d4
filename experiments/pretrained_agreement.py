"""How closely every imported architecture matches PyTorch: the table behind README's "Pretrained networks".

    python experiments/pretrained_agreement.py                      # every source
    python experiments/pretrained_agreement.py torchvision:resnet50  # some

Each source is a random torch model (no download; random batch-norm statistics), imported with
`jaxdl.pretrained.import_model`; both run on scikit-image's astronaut and chelsea photographs,
fitted by the source's evaluation transform. One JSON line per source: largest absolute logit
gap, largest logit, their ratio, whether the top-5 classes agree, and the seconds it took.
"""

from __future__ import annotations

import json
import sys
import time

from jaxdl.pretrained import import_model, source_metadata
from jaxdl.pretrained.verify import agreement, every_source, random_torch_model


def main(sources: list[str]) -> None:
    for source in sources or every_source():
        start = time.perf_counter()
        model = random_torch_model(source)
        module, card = import_model(source, torch_model=model)
        meta = source_metadata(source)
        result = agreement(module, card, model, meta["mean"], meta["std"])
        print(json.dumps({"source": source, **result, "seconds": round(time.perf_counter() - start, 1)}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
