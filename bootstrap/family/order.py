"""Install order, as both families take it: depth first from each root in turn, what a package needs before
it, a package already on the way down skipped (a cycle, broken where it is met). Without recursion, so no chain
of dependencies an index holds is too long."""

from collections.abc import Callable, Iterable


def depth_first(roots: Iterable[str], needs: Callable[[str], list[str]]) -> list[str]:
    """Every name reached from `roots` (in their order), each after what `needs(name)` lists (in its order)."""
    done: list[str] = []
    seen: set[str] = set()
    for top in roots:
        if top in seen:
            continue
        frames, on_way = [(top, needs(top), 0)], {top}
        while frames:
            name, deps, i = frames[-1]
            if i < len(deps):
                frames[-1] = (name, deps, i + 1)
                if deps[i] not in seen and deps[i] not in on_way:
                    on_way.add(deps[i])
                    frames.append((deps[i], needs(deps[i]), 0))
                continue
            frames.pop()
            on_way.discard(name)
            if name not in seen:
                seen.add(name)
                done.append(name)
    return done
