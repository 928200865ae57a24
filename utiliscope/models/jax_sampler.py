r"""NUTS with BlackJAX on a JAX build of the model's log density, compiled once per model structure.

PyMC's own ``pm.sample(nuts_sampler="numpyro")`` bakes every ``pm.Data`` value into the compiled function and
compiles anew on each call (a few seconds each). A study fits hundreds of models that differ only in their data
(g′, Dirichlet counts), so this module keeps data as *arguments* of the compiled function instead:

1. the model's log density and its posterior outputs (free variables and Deterministics) are rewritten with the
   shared ``pm.Data`` variables replaced by placeholders and turned into JAX functions
   (``pymc.sampling.jax.get_jaxified_graph``);
2. they are cached under a fingerprint of the graph's structure and constants (:func:`graph_fingerprint`), so two
   model objects with the same worlds, prior, likelihood and settings share one compiled function, even in a new
   :class:`~utiliscope.models.Utiliscope` built per fit by a study; the cache keeps the
   :data:`MAX_COMPILED` structures used last and frees the executables of the others;
3. one chain — a windowed adaptation of the step size and a diagonal mass matrix (nutpie's recipe, from
   BlackJAX's parts), then NUTS draws, one scan around one NUTS kernel (:func:`nuts_chain`) — is one ``jax.jit``
   function of (key, initial point, data), compiled once per (structure, tune, draws, target_accept): new data
   of the same shapes reuse it, so only the first fit of a study pays XLA's compile. (NumPyro's ``MCMC``
   re-traces its sampling loop on every ``run``, which is why BlackJAX's kernels are used.)

Chains run in parallel, one per XLA CPU device (:mod:`utiliscope.models.jax_setup` asks for one device per core),
each device driven by its own thread that takes the next chain when its last one is done: a device never runs two
chains at once. Not ``vmap`` (vectorised chains advance in lockstep with the deepest tree) nor ``pmap`` (pairs of
chains wait for the slower one: 5.7 s against 4.7 s for 4 chains of problem (a) on 2 cores). Chain i has its own
key and start whatever device runs it, so the draws do not depend on the number of devices.

Kept over nutpie with PyTensor's JAX backend and data as arguments: on problem (a) nutpie took 4.5× as long to
400 bulk ESS (its sampling, not its compile), though on (b) its shorter compile made it quicker
(``benchmarks/results/nutpie_jax.md``, ``python benchmarks/engines.py --problems --nutpie-jax``).
"""

from __future__ import annotations

# isort: off
# First: JAX's settings (64-bit floats, one CPU device per core) must be made before JAX starts, and importing
# blackjax starts it.
from utiliscope.models import jax_setup  # noqa: F401

# isort: on
import hashlib
import queue
import threading
import warnings
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property, partial

import arviz as az
import blackjax
import jax
import jax.numpy as jnp
import numpy as np
import pymc as pm
from blackjax.adaptation.low_rank_adaptation import build_growing_window_schedule
from blackjax.adaptation.metric_recipes import lookup_recipe

# Private: the adaptation engine ``staged_adaptation`` runs, used step by step (nuts_chain says why).
from blackjax.adaptation.staged_adaptation import _make_engine
from jax.flatten_util import ravel_pytree
from pymc.sampling.jax import get_jaxified_graph
from pytensor.compile.sharedvalue import SharedVariable
from pytensor.graph.basic import Constant
from pytensor.graph.replace import graph_replace
from pytensor.graph.traversal import io_toposort
from tqdm.auto import tqdm

# Imported for its side effect: the JAX implementations of the Ops PyTensor's JAX backend lacks.
from utiliscope.models import jax_ops  # noqa: F401
from utiliscope.models.impossible import check_starting_point

#: NUTS' largest number of trajectory doublings (as PyMC's and Stan's default): reaching it flags
#: ``reached_max_treedepth``.
MAX_TREE_DEPTH = 10
#: The diagonal mass matrix of the warmup: BlackJAX's Fisher-divergence estimate from draws and their gradients
#: (nutpie's). Chosen over Stan's variance estimate (``"welford_diag"``) by measurement, 4 chains × (500 + 1000),
#: two seeds each, in Stan's schedule: 1.2× the bulk ESS per gradient on problem (a) with ``monte_carlo`` g (39–44
#: leapfrog steps a draw instead of 62–70), 1.7× with ``importance`` (78–81 instead of 168–197), 1.3× on (b) with
#: ``importance``; no divergences and R-hat ≤ 1.01 with either.
WARMUP_METRIC = "fisher_diag"
#: Gradients smaller than this leave their coordinate's initial inverse mass at 1 (BlackJAX's rule for nutpie's
#: gradient-based start: a chain started at a stationary point would otherwise get an enormous scale).
FLAT_GRADIENT = 1e-10
#: Half-width of the uniform jitter added to each chain's unconstrained initial point (PyMC's jitter).
JITTER = 1.0


def graph_fingerprint(outputs: Sequence, placeholders: Sequence) -> str:
    """SHA-256 of a graph's structure and constants: the order of its operations, how they connect, and the bytes
    of every constant. Placeholders (the data) count by position, not by value.

    An operation counts by ``str(op)``, which for an Op with ``__props__`` lists them: an Op that holds data as
    attributes rather than as graph constants must put a digest of it among its props (as
    :class:`~utiliscope.models.soft_bellman.SoftBellman` does with its world), or two graphs on different data
    would share one fingerprint."""
    digest = hashlib.sha256()
    names: dict = {p: f"data{i}" for i, p in enumerate(placeholders)}
    for node in io_toposort(list(placeholders), list(outputs)):
        for var in node.inputs:
            if var not in names:
                names[var] = f"v{len(names)}"
                if isinstance(var, Constant):
                    data = np.asarray(var.data)
                    digest.update(f"{data.dtype}{data.shape}".encode())
                    digest.update(np.ascontiguousarray(data).tobytes())
                else:
                    digest.update(str(var.type).encode())
        for var in node.outputs:
            names[var] = f"v{len(names)}"
        digest.update(f"{node.op}({','.join(names[v] for v in node.inputs)})".encode())
    digest.update(",".join(names[v] for v in outputs).encode())
    return digest.hexdigest()


@dataclass
class CompiledDensity:
    """The model's log density and posterior outputs as JAX functions of (free values, data)."""

    free_names: list[str]
    data_names: list[str]
    output_names: list[str]
    logp: object
    outputs: object
    chain_runners: dict = field(default_factory=dict)

    def log_density(self, data):
        """The log density of the free values (a list) at fixed data."""
        return lambda values: self.logp(*values, *data)[0]

    def chain_runner(self, tune: int, draws: int, target_accept: float):
        """``run(key, initial values, data)`` for one chain, jit-compiled once per (tune, draws, target_accept)."""
        settings = (tune, draws, target_accept)
        if settings not in self.chain_runners:
            self.chain_runners[settings] = jax.jit(partial(self._run_chain, tune, draws, target_accept))
        return self.chain_runners[settings]

    def _run_chain(self, tune: int, draws: int, target_accept: float, key, initial, data):
        return nuts_chain(self.log_density(data), initial, key, tune, draws, target_accept)

    def release(self) -> None:
        """Free the XLA executables of this structure's jitted functions (they would recompile on a next call).

        Dropping the last reference to a jitted function is not enough: JAX's compile caches keep its executables
        (about 1,200 memory maps per structure on two CPU devices), and a process that compiled about 50
        structures hit Linux's limit of 65,530 maps (``LLVM ERROR: Unable to allocate section memory``).
        """
        functions = [*self.chain_runners.values()]
        if "batched_outputs" in self.__dict__:
            functions.append(self.batched_outputs)
        for function in functions:
            function.clear_cache()
        self.chain_runners.clear()
        self.__dict__.pop("batched_outputs", None)

    @cached_property
    def batched_outputs(self):
        """The posterior outputs of many draws (one XLA compile), draw after draw with ``lax.map``.

        Not ``vmap``: a vmapped batch of the occupancy's linear solves hung XLA's CPU runtime on 1,000 draws of a
        23-state gridworld (2 cores), as PyMC's own JAX post-processing defaults to a scan too.
        """
        return jax.jit(lambda values, data: jax.lax.map(lambda v: self.outputs(*v, *data), values))


def gradient_inverse_mass(gradient) -> jax.Array:
    r"""nutpie's initial diagonal inverse mass matrix ``1 / |∂ log p / ∂x_i|``, from the gradient at the start.

    ``diag(|∇ log p|)`` is a diagonal Hessian guess at the start: for a normal ``N(m, s²)`` started one standard
    deviation from m it is ``1 / s`` exactly, so the first trajectories see coordinates on comparable scales where
    the identity would make NUTS take steps sized for the narrowest one. Gradients below :data:`FLAT_GRADIENT`
    give 1 (the identity's entry). ``gradient`` is a pytree like the position (NUTS' initial state holds it).
    """
    magnitude = jnp.abs(ravel_pytree(gradient)[0])
    # The cap keeps an infinite gradient from giving a zero inverse mass.
    return jnp.where(magnitude < FLAT_GRADIENT, 1.0, 1.0 / jnp.minimum(magnitude, 1e20))


def nuts_chain(log_density, position, key, tune: int, draws: int, target_accept: float) -> tuple[list, dict]:
    """One chain: ``tune`` warmup steps in nutpie's recipe from BlackJAX's parts, then ``draws`` NUTS draws.

    The warmup adapts the step size (dual averaging toward ``target_accept``) and a diagonal mass matrix, with
    three parts, each BlackJAX's own: the Fisher-divergence estimate of the mass matrix (:data:`WARMUP_METRIC`);
    its start from the gradient (:func:`gradient_inverse_mass`) instead of the identity; and nutpie's schedule
    (``build_growing_window_schedule``), which re-estimates the mass matrix every 10 steps over the first 15% of
    the warmup and then in windows growing 1.5×, instead of Stan's, which keeps the identity for the first 100
    steps (with 500 tuning steps) and doubles its windows. Measured on problem (a) of
    ``benchmarks/performance.py`` with ``importance`` g, 4 chains × (500 + 1000), two seeds: Stan's first 100
    steps took about 750 leapfrog steps each (three fifths of the warmup's gradients), and the warmup
    120–135 thousand leapfrog steps a chain against 85–97 thousand in nutpie's recipe; bulk ESS per thousand
    gradients 1.1–1.4 against 2.0 (``monte_carlo`` g: 4.5–4.7 against 4.9–5.1); fresh-process fits of (a) with
    the default g, alternated, 28–32 s against 23–26 s; no divergences and R-hat ≤ 1.01 with either.

    Warmup and draws are one ``lax.scan`` over ``tune + draws`` steps around a single NUTS kernel; only its
    parameters change source, from the adaptation's current ones while tuning to its final ones (what
    ``blackjax.staged_adaptation`` returns) after. ``staged_adaptation(...).run`` followed by
    ``blackjax.nuts(...).step`` gives the same draws bit for bit, but puts two copies of NUTS, and of the model's
    gradient, in the compiled program, and the gradient-based start a third gradient (here it is read from NUTS'
    initial state). Measured on problem (a) with ``importance`` g (2 cores, empty compilation cache): tracing and
    XLA's compile of one chain 8.4 s with two kernels, 3.9 s with one; in a fit, where the two devices compile at
    once, 9.0 and 10.3 s against 5.1 and 7.3 s. The engine is BlackJAX's private ``_make_engine``, the one
    ``staged_adaptation`` runs (``blackjax`` is pinned below 1.8 for it; a test checks the draws against the public
    path). ``tune = 0`` gives step size 1 and the identity mass matrix.

    Returns
    -------
    positions : list of arrays
        The draws, one array ``(draws, ...)`` per block of ``position``.
    stats : dict
        Per draw: ``diverging``, ``energy``, ``lp``, ``acceptance_rate``, ``n_steps``, ``tree_depth``,
        ``step_size``.
    """
    warmup_key, sample_key = jax.random.split(key)
    keys = jnp.concatenate([jax.random.split(warmup_key, tune), jax.random.split(sample_key, draws)])
    state = blackjax.nuts.init(position, log_density)
    kernel = blackjax.nuts.build_kernel()
    if tune:
        core = lookup_recipe(WARMUP_METRIC).build_core(
            initial_inverse_mass_matrix=gradient_inverse_mass(state.logdensity_grad)
        )
        adapt_init, adapt_step, adapt_final = _make_engine(core, target_acceptance_rate=target_accept)
        adaptation = adapt_init(position, 1.0)
        schedule = jnp.asarray(build_growing_window_schedule(tune))
    else:
        adaptation = (jnp.float64(1.0), jnp.ones(ravel_pytree(position)[0].size))

    def parameters(adaptation, index):
        if not tune:
            return adaptation
        final_step_size, final_inverse_mass = adapt_final(adaptation)
        tuning = index < tune
        return (
            jnp.where(tuning, adaptation.step_size, final_step_size),
            jnp.where(tuning, adaptation.inverse_mass_matrix, final_inverse_mass),
        )

    def one_step(carry, xs):
        index, step_key = xs
        state, adaptation = carry
        step_size, inverse_mass = parameters(adaptation, index)
        state, info = kernel(
            step_key, state, log_density, step_size, inverse_mass, max_num_doublings=MAX_TREE_DEPTH
        )
        if tune:
            stage = schedule[jnp.minimum(index, tune - 1)]
            adaptation = jax.lax.cond(
                index < tune,
                lambda a: adapt_step(a, stage, state.position, state.logdensity_grad, info.acceptance_rate, index),
                lambda a: a,
                adaptation,
            )
        stats = {
            "diverging": info.is_divergent,
            "energy": info.energy,
            "lp": state.logdensity,
            "acceptance_rate": info.acceptance_rate,
            "n_steps": info.num_integration_steps,
            "tree_depth": info.num_trajectory_expansions,
            "step_size": step_size,
        }
        return (state, adaptation), (state.position, stats)

    _, (positions, stats) = jax.lax.scan(one_step, (state, adaptation), (jnp.arange(tune + draws), keys))
    return jax.tree.map(lambda x: x[tune:], positions), jax.tree.map(lambda x: x[tune:], stats)


#: How many model structures keep their compiled functions; the least recently used beyond it are released.
#: A study refits one structure (or a few, one per setting); a study whose every fit has its own structure (e.g.
#: ``importance`` g, whose proposal draws are constants of each model) compiles per fit anyway, and must not
#: accumulate executables.
MAX_COMPILED = 8
_COMPILED: OrderedDict[str, CompiledDensity] = OrderedDict()
#: Per model object: (its variables and data shapes, the compiled functions, their fingerprint). Rebuilding the
#: logp graph and hashing its constants takes about a second, which refits of one model (``pm.set_data`` between
#: fits of a study or SBC) need not repeat.
_BY_MODEL: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_CACHE_LOCK = threading.Lock()


def compile_density(model: pm.Model) -> tuple[CompiledDensity, str]:
    """Compile (or fetch from the cache) the JAX functions of ``model``; return them and their fingerprint."""
    data_vars = [var for var in model.data_vars if isinstance(var, SharedVariable)]
    signature = (tuple(model.named_vars), tuple(np.shape(var.get_value()) for var in data_vars))
    with _CACHE_LOCK:  # one fit's lookup, insertion and eviction at a time (studies fit in threads)
        known = _BY_MODEL.get(model)
        if known is not None and known[0] == signature and known[2] in _COMPILED:
            _COMPILED.move_to_end(known[2])
            return known[1], known[2]
        placeholders = [var.type(name=var.name) for var in data_vars]
        outputs = [var for var in model.unobserved_value_vars if not var.name.endswith("__")]
        replaced = graph_replace(
            [model.logp(), *outputs], dict(zip(data_vars, placeholders, strict=True)), strict=False
        )
        start = model.initial_point()
        free_shapes = [np.shape(start[var.name]) for var in model.value_vars]
        key = graph_fingerprint(replaced, [*model.value_vars, *placeholders]) + str(free_shapes)
        if key not in _COMPILED:
            inputs = [*model.value_vars, *placeholders]
            _COMPILED[key] = CompiledDensity(
                free_names=[var.name for var in model.value_vars],
                data_names=[var.name for var in data_vars],
                output_names=[var.name for var in outputs],
                logp=get_jaxified_graph(inputs=inputs, outputs=replaced[:1]),
                outputs=get_jaxified_graph(inputs=inputs, outputs=replaced[1:]),
            )
            while len(_COMPILED) > MAX_COMPILED:
                _COMPILED.popitem(last=False)[1].release()
        _COMPILED.move_to_end(key)
        _BY_MODEL[model] = (signature, _COMPILED[key], key)
        return _COMPILED[key], key


def _initial_points(model: pm.Model, names: Sequence[str], chains: int, rng: np.random.Generator) -> list:
    """Each chain starts at the model's initial point (unconstrained) plus uniform jitter in (−1, 1)."""
    start = model.initial_point()
    return [
        [start[name] + rng.uniform(-JITTER, JITTER, np.shape(start[name])) for name in names]
        for _ in range(chains)
    ]


_DEVICE_LOCKS: dict = {}
_DEVICE_LOCKS_GUARD = threading.Lock()


def device_lock(device) -> threading.Lock:
    """The process-wide lock of one device: held while a program runs there, so that a device never holds two
    executions at once, also when several fits run in threads (a study on a threaded Dask cluster). Several
    asynchronous executions of a while-loop program on one device have deadlocked XLA's CPU runtime on 2 cores.
    """
    with _DEVICE_LOCKS_GUARD:
        return _DEVICE_LOCKS.setdefault(device, threading.Lock())


def run_chains(run, chains: Sequence[tuple], data, devices: Sequence, on_done=None) -> list:
    """``run(key, start, data)`` for every ``(key, start)`` of ``chains``, in parallel over ``devices``.

    One thread per device (at most one per chain) takes the next chain not yet started, puts its inputs on its
    device and, holding the device's :func:`device_lock`, waits for the result before it takes another.
    ``on_done(1)`` is called as each chain finishes. Returns the results in the order of ``chains``; an error in
    any chain is raised here once every thread has stopped.

    A KeyboardInterrupt (Ctrl-C) while the chains run starts no further chain, waits for the running ones and is
    then raised: no thread outlives the call. The running ones cannot be stopped: a chain is one call of a
    jitted function, a single XLA execution (one ``lax.scan`` over warmup and draws), and neither JAX nor XLA's
    CPU runtime can cancel an execution in progress (``jax.Array`` has no cancel, and Python's signal handlers
    do not run inside it). Stopping sooner would mean cutting the scan into pieces run one call each, with a
    check between them, at the cost of a compile per piece length and of the one-scan design above; a chain
    lasts seconds to tens of seconds, which is what an interrupt can wait.
    """
    pending: queue.SimpleQueue = queue.SimpleQueue()
    for index in range(len(chains)):
        pending.put(index)
    results: list = [None] * len(chains)
    errors: list[BaseException] = []
    stop = threading.Event()

    def drive(device, done: threading.Event) -> None:
        try:
            while not errors and not stop.is_set():
                try:
                    index = pending.get_nowait()
                except queue.Empty:
                    return
                try:
                    key, start = jax.device_put(chains[index], device)
                    with device_lock(device):
                        results[index] = jax.block_until_ready(run(key, start, jax.device_put(data, device)))
                except BaseException as error:  # re-raised in the calling thread below
                    errors.append(error)
                    return
                if on_done is not None:
                    on_done(1)
        finally:
            done.set()

    threads = []
    for i, device in enumerate(devices[: max(len(chains), 1)]):
        done = threading.Event()
        threads.append((threading.Thread(target=drive, args=(device, done), name=f"utiliscope-chain-{i}"), done))
    launched = 0
    try:
        for thread, _ in threads:
            launched += 1  # counted first: an interrupt inside start() leaves open whether the thread runs
            thread.start()
        for thread, _ in threads:
            thread.join()
    except KeyboardInterrupt:
        stop.set()
        running = sum(not done.is_set() for _, done in threads[:launched])
        warnings.warn(
            f"interrupted: waiting for the {running} running chain thread(s) to finish their chain (a running JAX "
            "computation cannot be stopped); no new chain starts",
            RuntimeWarning,
            stacklevel=2,
        )
        _wait_through_interrupts(threads[:launched])
        raise
    if errors:
        raise errors[0]
    return results


#: How long an interrupted run waits for the thread whose ``start()`` the interrupt cut short to begin.
_START_GRACE_S = 1.0


def _wait_through_interrupts(threads: Sequence[tuple[threading.Thread, threading.Event]]) -> None:
    """Wait until every thread has set its ``done`` event; a further KeyboardInterrupt does not cut it short.

    Events, not ``Thread.join``: on Python 3.11 a join cut short by KeyboardInterrupt marks the running thread
    as stopped, so later joins return at once. The last thread's ``start()`` may have been the one interrupted:
    a thread that has not begun (``ident`` still None) within :data:`_START_GRACE_S` never will.
    """
    for position, (thread, done) in enumerate(threads):
        may_not_run = position == len(threads) - 1
        waited = 0.0
        while not done.is_set():
            if may_not_run and thread.ident is None and waited >= _START_GRACE_S:
                break
            try:
                done.wait(0.05)
                waited += 0.05
            except KeyboardInterrupt:
                continue
        if thread.ident is not None:
            thread.join(_START_GRACE_S)  # its last steps after setting ``done``


def sample_jax(
    model: pm.Model,
    draws: int,
    tune: int,
    chains: int,
    seed: int,
    progressbar: bool,
    target_accept: float,
    name: str,
) -> az.InferenceData:
    """NUTS draws of ``model``'s posterior with its current ``pm.Data`` values, as InferenceData.

    Returns the posterior (free variables in their constrained space and Deterministics, with the model's dims)
    and sample_stats (``diverging``, ``energy``, ``lp``, ``n_steps``, ``tree_depth``, ``reached_max_treedepth``,
    ``acceptance_rate``, ``step_size``). The progress bar counts chains (a chain runs inside one compiled call).
    """
    compiled, _ = compile_density(model)
    data = [model[name].get_value() for name in compiled.data_names]
    start = [model.initial_point()[name] for name in compiled.free_names]
    check_starting_point(float(compiled.logp(*start, *data)[0]), name)
    run = compiled.chain_runner(tune, draws, target_accept)
    keys = jax.random.split(jax.random.PRNGKey(seed), chains)
    starts = _initial_points(model, compiled.free_names, chains, np.random.default_rng(seed))
    with tqdm(total=chains, disable=not progressbar) as bar:
        results = run_chains(run, list(zip(keys, starts, strict=True)), data, jax.devices("cpu"), bar.update)
    values = [
        np.concatenate([np.asarray(positions[i]) for positions, _ in results])
        for i in range(len(compiled.free_names))
    ]
    first = jax.devices("cpu")[0]
    with device_lock(first):
        outputs = jax.block_until_ready(compiled.batched_outputs(*jax.device_put((values, data), first)))
    posterior = {
        name: np.asarray(value).reshape(chains, draws, *np.shape(value)[1:])
        for name, value in zip(compiled.output_names, outputs, strict=True)
    }
    stats = {name: np.stack([np.asarray(s[name]) for _, s in results]) for name in results[0][1]}
    stats["reached_max_treedepth"] = stats["tree_depth"] >= MAX_TREE_DEPTH
    dims = {name: list(model.named_vars_to_dims.get(name, ())) for name in posterior}
    return az.from_dict(
        posterior=posterior,
        sample_stats=stats,
        coords={name: list(values) for name, values in model.coords.items()},
        dims=dims,
    )


__all__ = [
    "compile_density",
    "gradient_inverse_mass",
    "graph_fingerprint",
    "nuts_chain",
    "run_chains",
    "sample_jax",
]
