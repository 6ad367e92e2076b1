"""What a benchmark run measures, and how much: the full set and the ``--quick`` subset."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

#: The sections of a run, in the order they run.
SECTIONS = ("warm", "modes", "sweep", "session", "network", "server", "tenants", "fork", "output", "files",
            "realistic", "cold", "baselines", "cli")


@dataclass
class Settings:
    quick: bool = False
    sections: list[str] = field(default_factory=lambda: list(SECTIONS))
    #: Runtimes of the warm sequential runs.
    runtimes: list[str] = field(default_factory=lambda: ["python", "bash", "node", "bun", "deno"])
    #: Runtimes of the cold runs and of the docker exec / docker run baselines.
    cold_runtimes: list[str] = field(default_factory=lambda: ["python", "bash", "node", "bun", "deno"])
    #: OCI runtimes (e.g. crun) whose cold rows, and docker run --rm partners, are measured beside Docker's
    #: default runtime's, interleaved with them.
    oci_runtimes: list[str] = field(default_factory=list)
    runs: int = 300
    warmup: int = 30
    cold_runs: int = 20
    cold_warmup: int = 1
    think_ms: float = 20.0
    burst_size: int = 16
    bursts: int = 10
    burst_pause_s: float = 0.3
    concurrency: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16])
    sweep_seconds: float = 5.0
    sweep_warmup_s: float = 1.0
    pool_size: int = 4
    max_concurrent: int = 16
    network_runs: int = 200
    #: Back to back, the two sides' spread is 4-20 ms: a p50 difference needs this many pairs to be
    #: within about 0.25 ms.
    server_runs: int = 1500
    server_seconds: float = 8.0
    server_concurrency: int = 8
    session_runs: int = 200
    #: Warm runs of one key, and of four keys taking turns, interleaved; then throughput of 4 callers.
    tenant_runs: int = 300
    tenant_seconds: float = 8.0
    output_sizes: list[int] = field(default_factory=lambda: [1 << 10, 64 << 10, 1 << 20, 10 << 20])
    file_sizes: list[int] = field(default_factory=lambda: [1 << 10, 1 << 20, 10 << 20])
    size_runs: int = 30
    exec_runs: int = 50
    #: docker run --rm baselines when the cold section is off (with it on, each cold run is paired with one).
    docker_run_runs: int = 20
    #: The command line (see cli_runs.py): `isol8rt run` through a local engine and the floors, this many
    #: times; cold `isol8rt run` and `docker run --rm`, this many.
    cli_runs: int = 40
    cli_cold_runs: int = 10
    cli_warmup: int = 2
    #: The realistic section (realistic.py): warm runs per workload, cold runs, seconds of 4 callers.
    realistic_runs: int = 20
    realistic_warmup: int = 2
    realistic_cold_runs: int = 3
    realistic_seconds: float = 10.0
    #: The image of its Python workloads; None: the data preset's (`isol8rt setup --preset data`).
    data_image: str | None = None
    #: The fork server: seconds of 4 callers per side; runs of the preload workload (with preload_image).
    fork_seconds: float = 8.0
    fork_runs: int = 100
    #: An image with an isol8rt.preload label naming pandas (its fork server preloads it): the fork
    #: section's pandas rows run there. None: those rows are left out.
    preload_image: str | None = None
    #: A latency loop stops early (keeping what it has) once it has run this long.
    loop_cap_s: float = 180.0

    def to_json(self) -> dict:
        return asdict(self)


def quick() -> Settings:
    """``--quick``: python, bash and node warm (n=100); python only for cold, the modes, the sweep (1.5 s a
    level), the variants and the baselines; output 1 KiB and 1 MiB; files 1 MiB; every loop capped at 12 s.
    Under two minutes on a quiet 2-core machine. The realistic section only when asked for (``--only``), and
    then with 5 warm runs, 1 cold run and 4 s of 4 callers per workload."""
    return replace(
        Settings(), quick=True, sections=[name for name in SECTIONS if name != "realistic"], runtimes=["python", "bash", "node"], cold_runtimes=["python"], runs=100, warmup=15,
        cold_runs=5, bursts=4, burst_size=8, sweep_seconds=1.5, sweep_warmup_s=0.4, network_runs=60,
        server_runs=100, server_seconds=3.0, session_runs=50, tenant_runs=60, tenant_seconds=3.0,
        fork_seconds=3.0, fork_runs=30, output_sizes=[1 << 10, 1 << 20],
        file_sizes=[1 << 20], size_runs=8, exec_runs=10, docker_run_runs=4, loop_cap_s=12.0,
        cli_runs=15, cli_cold_runs=4, cli_warmup=1,
        realistic_runs=5, realistic_warmup=1, realistic_cold_runs=1, realistic_seconds=4.0,
    )
