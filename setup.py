"""Build hook: a wheel carries the shipped models' Keras files, cards and figures inside the package
(`zoo/_shipped/<name>/`), so `zoo.get(name, weights="default")` works where the package is installed
without its source tree. An editable install reads `saved_models/` in place and copies nothing."""

import pathlib
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

SHIPPED = pathlib.Path(__file__).resolve().parent / "saved_models"


class BuildWithShippedModels(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False) or not SHIPPED.is_dir():
            return
        target = pathlib.Path(self.build_lib) / "zoo" / "_shipped"
        for folder in sorted(p for p in SHIPPED.iterdir() if (p / f"{p.name}.keras").is_file()):
            files = [folder / f"{folder.name}.keras", folder / "card.json", *sorted(folder.glob("*.png"))]
            (target / folder.name).mkdir(parents=True, exist_ok=True)
            for path in files:
                if path.is_file():
                    shutil.copy2(path, target / folder.name / path.name)


setup(cmdclass={"build_py": BuildWithShippedModels})
