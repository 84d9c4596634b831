"""One sink for what training reports: metrics.jsonl, TensorBoard and the progress bar.

Only rank 0 writes (a sink on another rank keeps the records in `history` only).
"""

from __future__ import annotations

from typing import Any

from tqdm import tqdm

from dancenow.run import RunDir


class MetricsSink:
    def __init__(self, run: RunDir, *, write: bool, progress: bool):
        self.run, self.write, self.progress = run, write, progress and write
        self.history: list[dict[str, Any]] = []
        self.tb = None
        if write:
            from torch.utils.tensorboard import SummaryWriter  # heavy: only where it is used

            self.tb = SummaryWriter(str(run.tensorboard))
        self.bar: tqdm | None = None

    def start_stage(self, stage: str, total: int | None, step: int) -> None:
        self.bar = tqdm(total=total, initial=step, desc=f"train[{stage}]", unit="step", disable=not self.progress,
                        dynamic_ncols=True)

    def set_total(self, total: int) -> None:
        self.bar.total = total
        self.bar.refresh()

    def step(self) -> None:
        self.bar.update()

    def _record(self, stage: str, step: int, values: dict[str, float], extra: dict[str, Any]) -> None:
        rec = {"stage": stage, "step": step, **extra, **values}
        self.history.append(rec)
        if not self.write:
            return
        self.run.append_metrics(rec)
        if self.tb is not None:
            for k, v in values.items():
                self.tb.add_scalar(f"{stage}/{k}", v, step)

    def losses(self, stage: str, step: int, lr: float, time_s: float, losses: dict[str, float]) -> None:
        self._record(stage, step, losses, {"lr": lr, "time_s": round(time_s, 2)})
        self.bar.set_postfix({k: f"{v:.3f}" for k, v in losses.items()}, refresh=False)

    def validation(self, stage: str, step: int, time_s: float, val_ssim: float) -> None:
        self._record(stage, step, {"val_ssim_person": val_ssim}, {"time_s": round(time_s, 2)})
        if self.write:
            self.bar.write(f"[{stage} {step}] validation SSIM (person crop): {val_ssim:.4f}")

    def image(self, tag: str, grid, step: int) -> None:
        if self.tb is not None:
            self.tb.add_image(tag, grid, dataformats="HWC", global_step=step)

    def end_stage(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
