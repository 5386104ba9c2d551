"""`privgate secure ...`: the development root of trust, the enclave server, measurement and split fine-tuning."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from secure_infer.tee.config import DEV_ROOT_KEY, TeeConfig

app = typer.Typer(help="TEE split inference (development root of trust without enclave hardware).")

Model = Annotated[str, typer.Option(help="smollm2-135m-instruct, all-minilm-l6-v2, or a local model directory")]
Split = Annotated[int, typer.Option(help="layers run on the client")]
RootKey = Annotated[str, typer.Option(help="development root of trust private key")]


@app.command()
def keygen(path: Annotated[str, typer.Option(help="where to write the key")] = DEV_ROOT_KEY) -> None:
    """Make the development root of trust (an Ed25519 key; NOT hardware attestation)."""
    from secure_infer.tee.attestation import generate_dev_root

    written = generate_dev_root(path)
    typer.echo(f"development root of trust: {written} (public key {written}.pub)")


@app.command()
def enclave(
    model: Model = "smollm2-135m-instruct",
    split_layers: Split = 2,
    dev_root_key: RootKey = DEV_ROOT_KEY,
    adapter: Annotated[str | None, typer.Option(help="sealed adapter path")] = None,
    host: str = "127.0.0.1",
    port: int = 7443,
) -> None:
    """Run an enclave server whose reports are signed by the development root of trust."""
    from secure_infer.tee.enclave import main

    cfg = TeeConfig(model=model, split_layers=split_layers, dev_root_key=dev_root_key, adapter_path=adapter)
    main(["--config", cfg.model_dump_json(), "--host", host, "--port", str(port)])


@app.command()
def measure(
    model: Model = "smollm2-135m-instruct",
    split_layers: Split = 2,
    adapter: Annotated[str | None, typer.Option(help="sealed adapter path (changes the measured config)")] = None,
) -> None:
    """Print the measurement an enclave with these settings reports (for a policy's allow-list)."""
    from secure_infer.tee.measure import measure as measure_slice
    from secure_infer.tee.measure import measured_config
    from secure_infer.tee.models import enclave_slice, load

    cfg = TeeConfig(model=model, split_layers=split_layers, adapter_path=adapter)
    loaded = load(model, with_tokenizer=False)
    typer.echo(measure_slice(measured_config(cfg, loaded.kind), enclave_slice(loaded, split_layers)))


@app.command("split-finetune")
def split_finetune_command(
    data: Annotated[Path, typer.Option(help="JSONL of {'text': ...} or {'messages': [...]}")],
    adapter: Annotated[str, typer.Option(help="where the enclave seals the adapter")],
    model: Model = "smollm2-135m-instruct",
    split_layers: Split = 2,
    dev_root_key: RootKey = DEV_ROOT_KEY,
    epochs: int = 3,
    lr: float = 1e-3,
    rank: int = 8,
    targets: Annotated[str, typer.Option(help="comma-separated Linear names that get LoRA")] = "q_proj,v_proj",
    enclave_address: Annotated[str | None, typer.Option(help="host:port; default: spawn on loopback")] = None,
    allowed_measurement: Annotated[list[str] | None, typer.Option(help="accepted measurement(s)")] = None,
) -> None:
    """Train the domain's LoRA adapter through the split: activations go encrypted, the adapter stays sealed."""
    from secure_infer.tee.finetune import split_finetune

    cfg = TeeConfig(
        model=model,
        split_layers=split_layers,
        dev_root_key=dev_root_key,
        adapter_path=adapter,
        lora_rank=rank,
        lora_targets=[t.strip() for t in targets.split(",") if t.strip()],
        enclave_address=enclave_address,
        allowed_measurements=allowed_measurement or [],
    )
    history = split_finetune(
        cfg, data, epochs=epochs, lr=lr, report=lambda e, loss: typer.echo(json.dumps({"epoch": e, "loss": loss}))
    )
    typer.echo(
        f"sealed adapter written by the enclave to {adapter} (first loss {history[0]:.4f}, last {history[-1]:.4f})"
    )
