"""Random sequences are reproducible from their seed and reach deep states; shrinking keeps
the smallest subsequence that still fails."""

from __future__ import annotations

import random
from collections import Counter

from forklab.diff.campaign import scenario_text
from forklab.diff.generate import Generator, act_ptrace, random_scenario, shrink
from forklab.diff.script import Scenario, Sym, parse, render_expr
from forklab.diff.sides import ModelSide


def test_same_seed_same_sequence() -> None:
    assert scenario_text(random_scenario(5, 30)) == scenario_text(random_scenario(5, 30))
    assert scenario_text(random_scenario(5, 30)) != scenario_text(random_scenario(6, 30))


def test_sequences_reach_deep_states() -> None:
    calls: Counter[str] = Counter()
    deep = Counter[str]()
    for seed in range(150):
        text = scenario_text(random_scenario(seed, 25))
        calls.update(line.split("(")[0].split(".")[-1] for line in text.splitlines())
        deep.update(flag for flag in ("CLONE_THREAD", "CLONE_NEWPID", "CLONE_NEWUSER", "CLONE_VFORK") if flag in text)
        deep.update(["setresuid"] if "setresuid(1000" in text else [])
    for call in ("fork", "clone", "clone3", "vfork", "execve", "exit", "exit_group", "wait4", "kill", "unshare",
                 "setrlimit", "mmap", "poke", "peek", "madvise", "open", "sigaction", "prctl", "tgkill", "setpgid",
                 "waitid", "pidfd_open", "pidfd_send_signal", "ptrace"):  # fmt: skip
        assert calls[call] > 0, call
    assert all(deep[flag] > 10 for flag in ("CLONE_THREAD", "CLONE_NEWPID", "CLONE_NEWUSER", "CLONE_VFORK"))


def test_a_vfork_child_only_execs_or_exits() -> None:
    for seed in range(100):
        steps = random_scenario(seed, 25).steps
        for index, step in enumerate(steps):
            if step.call == "vfork" and step.targets:
                child = step.targets[0]
                following = [s for s in steps[index + 1 :] if s.actor == child]
                calls = [s.call for s in following]
                # exec (then anything), or an exit, or an exec that failed and then an exit
                assert not calls or calls[0] in ("execve", "exit"), (seed, calls)


def test_shrink_finds_the_smallest_failing_subsequence() -> None:
    scenario = parse("".join("t0.getpid()\nt0.getuid()\n" for _ in range(10)) + "t0.kill(0, 0)\nt0.getppid()\n")

    def fails(candidate: Scenario) -> bool:
        calls = [step.call for step in candidate.steps]
        return "kill" in calls and "getppid" in calls

    smallest = shrink(scenario, fails)
    assert [step.call for step in smallest.steps] == ["kill", "getppid"]


def test_job_control_waitid_pidfds_and_ptrace_are_drawn() -> None:
    text = "".join(scenario_text(random_scenario(seed, 25)) for seed in range(150))
    for word in ("SIGSTOP)", "SIGTSTP)", "SIGCONT)", "WUNTRACED", "WCONTINUED", "P_PGID", "WNOWAIT", "P_PIDFD",
                 "PIDFD_THREAD", "PIDFD_NONBLOCK", "PIDFD_SIGNAL_PROCESS_GROUP", "PTRACE_SEIZE", "PTRACE_ATTACH",
                 "PTRACE_CONT", "PTRACE_DETACH", "PTRACE_INTERRUPT", "PTRACE_SETOPTIONS", "PTRACE_KILL"):  # fmt: skip
        assert word in text, word
    for option in ("TRACEFORK", "TRACEVFORK", "TRACECLONE", "TRACEEXEC", "TRACEEXIT", "TRACEVFORKDONE"):
        assert f"PTRACE_O_{option}" in text, option


def test_a_task_calls_only_while_it_runs() -> None:
    """No step is made by a task that the model has stopped, traced, or asleep in a call; the
    sandbox's init seldom exits as a whole."""
    execs = 0
    group_exits: Counter[bool] = Counter()  # by a thread of the sandbox's init, or not
    for seed in range(100):
        generator = Generator(random.Random(seed), ModelSide())
        while len(generator.steps) < 25 and generator.ready_tasks():
            before = len(generator.steps)
            in_init = {name: generator.in_init(name) for name in generator.ready_tasks()}
            generator.step()
            for step in generator.steps[before : before + 1]:
                assert step.actor in in_init
                execs += step.call == "execve"
                group_exits[in_init[step.actor]] += step.call == "exit_group"
    assert execs > 20
    # The sandbox's init seldom ends it all.
    assert group_exits[False] > 5 * group_exits[True]


def test_tracing_prefers_the_actors_children() -> None:
    """An actor with children mostly traces one of them."""
    own = other = 0
    for seed in range(200):
        generator = Generator(random.Random(seed), ModelSide())
        while len(generator.steps) < 25 and generator.ready_tasks():
            children = {actor: generator.related(actor, tracees=False) for actor in generator.ready_tasks()}
            before = len(generator.steps)
            generator.step()
            for step in generator.steps[before:]:
                if (
                    children.get(step.actor)
                    and step.call == "ptrace"
                    and render_expr(step.args[0])
                    in (
                        "PTRACE_SEIZE",
                        "PTRACE_ATTACH",
                    )
                ):
                    if render_expr(step.args[1]) in children[step.actor]:
                        own += 1
                    else:
                        other += 1
    assert own > 2 * other > 0


def test_tracers_never_chain() -> None:
    """A tracee traces nobody and a tracer is traced by nobody: chains race on the host, and
    tracers in a ring, killed, would each wait in their exit event for the other, for ever."""
    for seed in range(20):
        g = Generator(random.Random(seed), ModelSide())
        for line in ("t1 = t0.fork()", "t2 = t0.fork()", "t1.ptrace(PTRACE_SEIZE, t2, 0, 0)"):
            g.play(line)
        count = len(g.steps)
        act_ptrace(g, "t2")
        assert len(g.steps) == count, seed
        act_ptrace(g, "t0")
        assert g.steps[-1].args[1] != Sym("t1"), (seed, g.steps[-1])
