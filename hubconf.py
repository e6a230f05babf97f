"""PyTorch Hub entry points: `torch.hub.load("<this repo or its path>", "classifier", "runs/x" or "team/name")`."""

dependencies = ["torch", "transformers", "peft", "accelerate", "huggingface_hub", "safetensors", "yaml", "numpy",
                "pandas"]


def classifier(run_or_repo: str, revision: str | None = None, hub: str | None = None, token: str | None = None,
               device: str | None = None, trust_remote_code: bool = False):
    """A ready nlptransfer TextClassifier: a run folder, a pushed repo folder, or a hub repo NAMESPACE/NAME
    (Hugging Face Hub; `hub=` a folder hub), e.g. `.predict(["great phone"])`."""
    from nlptransfer import TextClassifier

    return TextClassifier.from_pretrained(run_or_repo, revision=revision, hub=hub, token=token, device=device,
                                          trust_remote_code=trust_remote_code)
