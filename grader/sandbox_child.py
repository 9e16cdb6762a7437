"""What runs inside the sandbox: executes a submission's cells and answers the
grader's requests with plain data (see protocol.py).

It is copied into the sandbox with protocol.py and isolation_probe.py and run as a
script; it must not import the grader (which the sandbox cannot reach anyway).
Everything here is the student's territory once the cells have run: the grader
trusts no answer beyond "this is what the student's function returned".

    python -I sandbox_child.py REQUEST_FD REPLY_FD
"""

import functools
import linecache
import os
import sys
import traceback

HARNESS_DIR = os.path.dirname(os.path.abspath(__file__))


def main(request_fd, reply_fd):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import isolation_probe
    import protocol
    import scenarios
    import torch
    import watch
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    torch.set_num_threads(1)
    requests = os.fdopen(request_fd, "rb", buffering=0)
    replies = os.fdopen(reply_fd, "wb", buffering=0)

    config = Config()
    config.HistoryManager.enabled = False  # no sqlite file in the sandbox
    shell = InteractiveShell.instance(config=config)
    shell.enable_gui = lambda gui=None: None  # `%matplotlib inline` with no front end: draw nowhere
    namespace = shell.user_ns

    def reply(header, value=None):
        blobs = []
        protocol.write_message(replies, {**header, "value": protocol.encode_value(value, blobs)},
                               blobs)

    def describe(err):
        try:
            message = str(err)[:2000]
        except Exception:
            message = "<unprintable exception>"
        return {"ename": type(err).__name__, "message": message, "frames": frames_of(err)}

    def frames_of(err):
        """[[qualified function name, source line], ...] of the traceback, innermost last,
        from the notebook's cells only: where a NotImplementedError or an assert came from."""
        frames = []
        for frame, lineno in traceback.walk_tb(err.__traceback__):
            code = frame.f_code
            if code.co_filename.startswith(HARNESS_DIR):
                continue
            line = linecache.getline(code.co_filename, lineno, frame.f_globals).strip()
            frames.append([code.co_qualname, line[:300]])
        return frames[-20:]

    def to_device(value, device):
        if isinstance(value, torch.Tensor):
            return value.to(device).requires_grad_(value.requires_grad) \
                if value.is_floating_point() else value.to(device)
        if isinstance(value, (list, tuple)):
            return type(value)(to_device(v, device) for v in value)
        if isinstance(value, dict):
            return {k: to_device(v, device) for k, v in value.items()}
        return value

    def digest(value):
        """A small fingerprint of a result, so the grader can see timed calls really computed."""
        if isinstance(value, torch.Tensor):
            return {"sum": float(value.detach().double().sum()), "shape": list(value.shape)}
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, (list, tuple)):
            return [digest(v) for v in value]
        if isinstance(value, dict):
            return {str(k): digest(v) for k, v in value.items()}
        return type(value).__name__

    def changed(sent, after):
        """Indices of the tensor arguments a call modified in place (NaN equal to NaN)."""
        def same(a, b):
            return isinstance(a, torch.Tensor) and a.shape == b.shape and a.dtype == b.dtype \
                and bool(((a == b) | (a.isnan() & b.isnan()) if a.is_floating_point()
                          else (a == b)).all())
        return [i for i, (before, now) in enumerate(zip(sent, after))
                if before is not None and not same(now, before)]

    staged, originals = {}, {}
    while True:
        header, blobs = protocol.read_message(requests)
        op = header.get("op")
        try:
            args = protocol.decode_value(header.get("args"), blobs)
            if op == "probe":  # the grader's isolation check, before any of the cells
                reply({"ok": True}, isolation_probe.probe(args[0]))
            elif op == "load":
                cell_errors = []
                for index, source in enumerate(args):
                    result = shell.run_cell(source, store_history=False)
                    error = result.error_before_exec or result.error_in_exec
                    if error is not None:
                        cell_errors.append({"index": index, **describe(error)})
                reply({"ok": True}, cell_errors)
            elif op == "has":
                reply({"ok": True}, args[0] in namespace)
            elif op == "set_global":
                name, value = args
                namespace[name] = to_device(value, header.get("device", "cpu"))
                reply({"ok": True})
            elif op == "call":
                name, call_args = args[0], to_device(args[1], header.get("device", "cpu"))
                if name not in namespace:
                    raise NameError(f"name {name!r} is not defined")
                sent = [a.detach().clone() if isinstance(a, torch.Tensor) else None
                        for a in call_args]
                if len(args) > 2 and args[2]:  # a from-scratch function: what did it reach?
                    with watch.recording() as recorder:
                        result = namespace[name](*call_args)
                    reached = recorder.names()
                else:
                    result, reached = namespace[name](*call_args), None
                reply({"ok": True, "modified": changed(sent, call_args), "reached": reached},
                      result)
            elif op == "substitute":
                # The book's code for functions of parts already judged, so that the tests
                # of what calls them judge only the caller; None puts the student's back.
                for name, source in args[0].items():
                    if name not in originals:
                        originals[name] = namespace.get(name)
                    if source is None:
                        namespace[name] = originals[name]
                    else:
                        exec(compile(source, f"<book's {name}>", "exec"), namespace)
                reply({"ok": True})
            elif op == "scenario":
                name, scenario_args = args[0], to_device(args[1], header.get("device", "cpu"))
                reply({"ok": True}, getattr(scenarios, name)(namespace, *scenario_args))
            elif op == "stage":
                key, value = args
                staged[key] = to_device(value, header.get("device", "cpu"))
                reply({"ok": True})
            elif op == "repeat":
                kind, name, key, times = args
                if kind == "scenario":
                    function = functools.partial(getattr(scenarios, name), namespace)
                elif name in namespace:
                    function = namespace[name]
                else:
                    raise NameError(f"name {name!r} is not defined")
                for _ in range(times):
                    result = function(*staged[key])
                if header.get("device", "cpu").startswith("cuda"):
                    torch.cuda.synchronize()
                reply({"ok": True}, digest(result))
            elif op == "exit":
                return
            else:
                raise ValueError(f"unknown request {op!r}")
        except BaseException as err:  # the student's exception, SystemExit included
            reply({"ok": False, "error": describe(err)})


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
