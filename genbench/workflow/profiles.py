"""Make the project's profiles findable by name: ``snakemake --profile slurm``.

Snakemake looks a profile name up in the working directory, then in its user config folder
(``$XDG_CONFIG_HOME/snakemake``, usually ``~/.config/snakemake``), then the site folder. This
module links ``<user config>/snakemake/<name>`` to this checkout's ``profiles/<name>`` for each
shareable profile, and never replaces a profile the user already has.
"""

from __future__ import annotations

import os
from pathlib import Path

NAMED_PROFILES = ("local", "slurm")
REPO_PROFILES = Path(__file__).resolve().parents[2] / "profiles"


def snakemake_profile_dir() -> Path:
    """The user profile folder Snakemake searches (platformdirs' user config dir of "snakemake")."""
    from platformdirs import AppDirs

    return Path(AppDirs("snakemake", "snakemake").user_config_dir)


def install_profiles(target_dir: Path | None = None, source_dir: Path = REPO_PROFILES) -> list[str]:
    """Link each of NAMED_PROFILES into ``target_dir``; one message per profile saying what was
    done. An existing file, folder or link of that name is left as it is (and said so), unless
    it already links to this checkout's profile."""
    target_dir = Path(target_dir or snakemake_profile_dir())
    target_dir.mkdir(parents=True, exist_ok=True)
    messages = []
    for name in NAMED_PROFILES:
        source, target = (source_dir / name).resolve(), target_dir / name
        if target.is_symlink() and Path(os.readlink(target)) == source:
            messages.append(f"profile {name!r}: {target} already links to {source}")
        elif target.exists() or target.is_symlink():
            what = f"a link to {os.readlink(target)}" if target.is_symlink() else "a profile of yours"
            messages.append(
                f"profile {name!r}: kept {target} ({what}); not replaced. Use --profile {source} for this checkout's"
            )
        else:
            target.symlink_to(source, target_is_directory=True)
            messages.append(f"profile {name!r}: linked {target} -> {source} (snakemake --profile {name})")
    return messages
