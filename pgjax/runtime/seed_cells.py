"""The seeds of a run laid out on the devices as one compiled program, and its memory check.

The seeds run as one `cells.CellsProgram` (`SeedCells`), laid out by
`experiment.SeedLayout`, its largest chunk compiled ahead of time for the memory check and
reused by training; the program belongs to the run and goes with it.
"""

from __future__ import annotations

import time


def plural(count: int, noun: str) -> str:
    """`1 seed`, `2 seeds`."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


class SeedCells:
    """The seeds of a run laid out on the devices (`experiment.SeedLayout`) as one
    `cells.CellsProgram`: placed keys and hparams, the sharded init and chunk programs
    compiled ahead of time, and the conversion of results back to `[S]` rows."""

    def __init__(self, trainer, layout, keys, hparams):
        from pgjax.runtime import experiment
        from pgjax.runtime.cells import CellsProgram

        self.trainer, self.layout = trainer, layout
        self.mesh = experiment.seed_mesh(layout)
        keys, hparams = experiment.place_seeds((keys, hparams), layout, self.mesh)
        self.program = CellsProgram(trainer, self.mesh, layout.width, keys, hparams)

    @property
    def keys(self):
        return self.program.keys

    @property
    def hparams(self):
        return self.program.hparams

    @property
    def functions(self):
        return self.program.functions

    def compile_chunk(self, size: int):
        """The compiled program of one chunk of `size` updates, from the shapes of the state
        `init` makes (nothing is computed); a later `train` of that size, fresh or resumed,
        runs it."""
        return self.program.compile(size)

    @classmethod
    def build(cls, trainer, record: dict) -> SeedCells:
        """From a run record's `seeds`, `width` and `root_seed`."""
        import jax
        import jax.numpy as jnp

        from pgjax.runtime import experiment

        seeds = record["seeds"]
        layout = experiment.SeedLayout.plan(len(seeds), record["width"], len(jax.devices()))
        hparams = jax.tree.map(lambda x: jnp.broadcast_to(jnp.asarray(x), (len(seeds),)), trainer.config.hparams)
        return cls(trainer, layout, experiment.seed_keys(record["root_seed"], seeds), hparams)

    def abstract_state(self):
        """The `[S]` state's structure (what a checkpoint holds), from shapes alone: slicing
        the placed keys would run a program on every process's devices, which all processes
        would have to enter together (a resume deadlocked on it)."""
        import jax

        rows = jax.tree.map(lambda x: jax.ShapeDtypeStruct((self.layout.num_seeds, *x.shape[1:]), x.dtype,
                                                           weak_type=getattr(x, "weak_type", False)),
                            (self.keys, self.hparams))
        return jax.eval_shape(jax.vmap(self.trainer.init), *rows)

    def place(self, state):
        from pgjax.runtime import experiment

        return experiment.place_seeds(state, self.layout, self.mesh)

    def rows(self, state):
        """`[S]` rows of a padded state, on the first device (checkpoints, evaluation)."""
        from pgjax.runtime import experiment

        return experiment.unpad_seeds(state, self.layout)

    def fetch(self, metrics: dict) -> dict:
        from pgjax.runtime import sharding

        return {k: v[: self.layout.num_seeds] for k, v in sharding.fetch(metrics).items()}

    def train(self, state, done: int, chunks: int, on_chunk) -> object:
        """Train from `state` (`[S]` rows, None: fresh) after `done` updates; the final `[S]` state."""
        from pgjax.runtime.experiment import train_seeds

        state = None if state is None else self.place(state)
        state, _ = train_seeds(self.trainer, self.keys, self.hparams, hparams_batched=True, max_chunks=chunks,
                               on_chunk=on_chunk, state=state, updates_done=done, functions=self.functions,
                               fetch=self.fetch)
        return self.rows(state)

    def check_memory(self, chunks: int, memory_limit: str | int | None) -> dict:
        """Per-device bytes of the run; raises MemoryError above `memory_limit` (bytes or a
        size such as "512MB"; default: half the free RAM shared by the CPU devices, or the
        accelerator's limit).

        First the estimate from shapes alone (state in and out and one chunk's metrics for
        the seeds each device holds), then XLA's count for the compiled program of the
        largest chunk, which adds the temporaries (on an accelerator many times the
        estimate, `benchmarks/README.md`). That program is compiled here, ahead of
        training; the first chunk runs it.
        """
        import jax

        from pgjax.runtime import cells, sharding
        from pgjax.runtime.experiment import chunk_sizes
        from pgjax.runtime.sweep import parse_bytes

        size = max(chunk_sizes(self.trainer.config.num_updates, chunks))
        layout = self.layout
        if memory_limit is not None:  # a size or a number of bytes, refused if not positive
            memory_limit = parse_bytes(memory_limit)
        limit = cells.memory_limit(self.mesh, memory_limit)

        def refuse(need: int, what: str, compiled: bool = False) -> MemoryError:
            parts = cells.largest_parts(self.trainer, size, need // layout.per_device if compiled else None)
            # Fewer seeds, or seeds spread over more CPU devices, help only where a device holds several.
            fixes = ["lower those"] + (["use fewer seeds"] if layout.num_seeds > 1 else [])
            if layout.per_device > 1 and jax.default_backend() == "cpu":
                fixes.append("spread the seeds over more --host-devices")
            return MemoryError(
                f"{plural(layout.num_seeds, 'seed')} need{'s' if layout.num_seeds == 1 else ''} about "
                f"{need / 1e6:.2f} MB per device ({plural(layout.per_device, 'seed')} on each of {layout.num_devices} "
                f"device(s)) by {what}, more than the limit {limit / 1e6:.2f} MB; the largest parts of one seed: "
                f"{parts}; {', '.join(fixes)}, or raise --memory-limit"
            )

        estimate = self.program.estimated_bytes(size)
        if estimate > limit:
            raise refuse(estimate, "the training state and metrics")
        if sharding.is_writer():  # compiling takes seconds to minutes: say what the wait is
            print(f"pgjax: compiling the training program ({plural(size, 'update')} per chunk, "
                  f"{plural(layout.num_seeds, 'seed')}{padding_note(layout)})", flush=True)
        started = time.perf_counter()
        compiled = self.program.compiled_bytes(size)
        if compiled is not None and compiled > limit:
            raise refuse(compiled, f"XLA's count for one chunk of {size} updates, temporaries included", True)
        return {"bytes_per_device": estimate, "compiled_bytes_per_device": compiled, "limit": limit,
                "compile_seconds": time.perf_counter() - started}


def padding_note(layout) -> str:
    """", computed as 6: ..." where whole vmap groups on every device pad the seeds (the
    padding costs its share of the time, and is dropped), else ""."""
    if layout.padded == layout.num_seeds:
        return ""
    vmaps = layout.per_device // layout.width
    return (f", computed as {layout.padded}: {plural(layout.num_devices, 'device')} x {plural(vmaps, 'vmap')} of "
            f"{layout.width}, the {plural(layout.padded - layout.num_seeds, 'extra seed')} dropped")
