import json
def load(p): return json.load(open(p))["logits"]
def maxdiff(a, b):
    m = 0.0
    for x, y in zip(a, b):
        for r, s in zip(x, y):
            for u, v in zip(r, s):
                m = max(m, abs(u - v))
    return m
for fx in ["olmo2-tiny", "flexolmo-tiny"]:
    ref = json.load(open(f"fixtures/{fx}/reference.json"))
    print(f"{fx}: ours(cuda, fp32) vs transformers reference: max |diff| = {maxdiff(load(f'/tmp/{fx}.cuda.json'), ref['logits']):.3e}")
opt = json.load(open("fixtures/flexolmo-tiny-optout/reference.json"))
print(f"flexolmo-tiny --exclude-experts 3 (cuda) vs transformers with expert 3 removed: max |diff| = {maxdiff(load('/tmp/optout.cuda.json'), opt['logits']):.3e}")
hf = load("/tmp/hf_composed.json")
print(f"composed demo model: transformers {json.load(open('/tmp/hf_composed.json'))['model_class']} vs ours cuda: max |diff| = {maxdiff(hf, load('/tmp/ours_composed_cuda.json')):.3e}; vs ours cpu: {maxdiff(hf, load('/tmp/ours_composed_cpu.json')):.3e}")
