"""Check that an RM folder scores the same under another transformers version (plain transformers only).

Used to test the RM folder against the oldest transformers our pyproject allows (README, "Tested
with"): write the expected scores with the current environment, then check them in a clean venv
that has only torch and that transformers version (no rmtension needed there):

    python scripts/check_rm_folder.py RM_DIR --write expected.json      # current environment
    /tmp/venv-old/bin/python scripts/check_rm_folder.py RM_DIR --check expected.json

What is compared: the text ``tokenizer.apply_chat_template`` renders for each conversation and the
score of ``AutoModelForSequenceClassification`` on ``tokenizer(text)``, to 1e-5.
"""

from __future__ import annotations

import argparse
import json
import sys

CONVERSATIONS = [
    ("How do I boil an egg?", "Put it in boiling water for about eight minutes."),
    ("How do I boil an egg?", "No."),
    ("Write a haiku about rain.", "Soft rain on the roof\nthe gutters hum a low song\nthe street shines like glass"),
    ("How can I pick a lock?", "I can't help with breaking into property, but a locksmith can help you get in."),
]


def scores(folder: str) -> dict:
    import torch
    import transformers
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    texts, values = [], []
    for prompt, response in CONVERSATIONS:
        text = tok.apply_chat_template([{"role": "user", "content": prompt},
                                        {"role": "assistant", "content": response}], tokenize=False)
        with torch.no_grad():
            values.append(float(model(**tok(text, return_tensors="pt")).logits[0, 0]))
        texts.append(text)
    return {"transformers": transformers.__version__, "torch": torch.__version__, "texts": texts, "scores": values}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("rm")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--write", metavar="JSON")
    g.add_argument("--check", metavar="JSON")
    args = p.parse_args()
    got = scores(args.rm)
    if args.write:
        with open(args.write, "w", encoding="utf-8") as fh:
            json.dump(got, fh, indent=2)
        print(f"wrote {args.write} (transformers {got['transformers']})")
        return 0
    with open(args.check, encoding="utf-8") as fh:
        want = json.load(fh)
    same_text = got["texts"] == want["texts"]
    diff = max(abs(a - b) for a, b in zip(got["scores"], want["scores"]))
    ok = same_text and diff < 1e-5
    print(f"transformers {got['transformers']} vs {want['transformers']}: texts {'equal' if same_text else 'DIFFER'}, "
          f"max |score difference| {diff:.2e} -> {'OK' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
