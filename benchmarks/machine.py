"""Which machine a figure came from, without importing TensorFlow (the GPU
machine runs the layers on Keras's JAX backend)."""

import datetime
import json
import os
import pathlib
import platform

import keras

__all__ = ["describe_machine"]


def _accelerators():
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return [f"{d.platform}:{getattr(d, 'device_kind', d)}" for d in jax.devices()]
    if backend == "tensorflow":
        import tensorflow as tf

        return [d.name for d in tf.config.list_physical_devices() if d.device_type != "CPU"]
    return []


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_machine():
    return {
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "accelerators": _accelerators(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "keras": keras.__version__,
        "backend": keras.backend.backend(),
        "measured_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def write_results(result, path):
    """Writes a benchmark's `result` as indented JSON to `path` (folders made), says so, and returns the path."""
    out = pathlib.Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return out
