"""What goes into an image besides the archive, by digest, as the lock records it: the recipe's settings
(local files by content), each local file, each customize hook, each repository keyring file."""

import hashlib
import json
from pathlib import Path

from bootstrap.build import localfiles
from bootstrap.build.recipe import Recipe
from bootstrap.host.cache import sha256_file
from bootstrap.records.lock import LockedInput


def inputs_of(recipe: Recipe) -> tuple[LockedInput, ...]:
    """The recipe's inputs: a change to any of them changes the image, whatever the archive does."""
    data = recipe.as_dict()
    data.pop("name", None)
    files = [LockedInput("file", f.dest, localfiles.digest(f.source)) for f in recipe.files]
    for entry, locked in zip(data.get("files", []), files, strict=True):
        entry["source"] = locked.sha256
    keyrings = [
        LockedInput("keyring", r.url, sha256_file(Path(r.keyring))) for r in recipe.repositories if not r.is_fingerprint
    ]
    for entry, repo in zip(data.get("repositories", []), recipe.repositories, strict=True):
        if not repo.is_fingerprint:
            entry["keyring"] = sha256_file(Path(repo.keyring))
    if recipe.archive_keyring:
        digest = sha256_file(Path(recipe.archive_keyring))
        data["archive"]["keyring"] = digest
        keyrings.append(LockedInput("keyring", "archive", digest))
    settings = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
    hooks = [
        LockedInput("hook", f"customize[{i}]", hashlib.sha256(h.run.encode()).hexdigest())
        for i, h in enumerate(recipe.customize)
    ]
    return (LockedInput("recipe", recipe.name, settings), *files, *hooks, *keyrings)
