#!/usr/bin/env python3
"""The PyTorch example from Python, as a notebook would run it, cell by cell: upload the data and
the code, submit the training job, follow its logs, wait, fetch the model, and read the bill.

    pip install --no-build-isolation ./clients/python          # once, from the checkout
    export TESSERA_SERVER=127.0.0.1:7070 TESSERA_API_KEY_FILE=acme.key
    python3 examples/pytorch/submit.py --account acme
"""

import argparse
import os
import subprocess
import sys
import tempfile

import tessera_client as tessera

HERE = os.path.dirname(os.path.abspath(__file__))

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("--account", default="acme")
parser.add_argument("--epochs", type=int, default=10)
parser.add_argument("--image", default="", help="an OCI image the workers hold (empty: their process sandbox)")
args = parser.parse_args()
work = tempfile.mkdtemp(prefix="tessera-example-")

# In [1]: the client, from TESSERA_SERVER and TESSERA_API_KEY(_FILE).
client = tessera.Client()
print("balance:", client.balance(args.account).available_utok, "µT")

# In [2]: the data (made here) and the code (this directory's train.py, as a bundle).
subprocess.run([sys.executable, os.path.join(HERE, "make_data.py"), os.path.join(work, "train.csv"), "4000"], check=True)
code_dir = os.path.join(work, "code")
os.makedirs(code_dir)
with open(os.path.join(HERE, "train.py")) as src, open(os.path.join(code_dir, "train.py"), "w") as dst:
    dst.write(src.read())
data = client.artifacts.upload(os.path.join(work, "train.csv"), account=args.account)
code = client.artifacts.upload(code_dir, account=args.account, name="code")
print("data", data.digest, "code", code.digest)

# In [3]: the job: the same spec as a YAML file would hold.
job = client.submit({
    "gpu_count": 1,
    "bid_utok_per_gpu_hour": 2_000_000,
    "max_duration_ms": 900_000,
    "container": {
        "image": args.image,
        "command": ["python3", "/job/code/train.py", "--epochs", str(args.epochs)],
        "inputs": [{"artifact": data.digest, "path": "train.csv"}],
        "code": code.digest,
        "checkpoint_interval_s": 5,
        "cpu_cores": 1,
        "memory_mib": 2048,
    },
}, account=args.account)
print("submitted", job)

# In [4]: its output, live, until it ends (a lost worker's attempt and the next one's, in order).
for line in job.logs(follow=True):
    print(f"[attempt {line.attempt}] {line.text}")

# In [5]: the result, the model, the bill.
job.wait(check=True)
job.outputs(os.path.join(work, "model"))
print("model files:", sorted(os.listdir(os.path.join(work, "model"))))
for line in client.invoice(job.job_id).lines:
    print(f"attempt {line.attempt}: {line.gpu_ms} GPU-ms, {line.charge_utok} µT")
