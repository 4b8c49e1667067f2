"""The simulator's SSH admin console.

``serve_console`` listens for ``ssh admin@host`` with public-key auth and runs
console commands (keys, faults, stats, node) against the live simulator. The
package splits as::

    context         ConsoleSettings, ConsoleContext: what the console is given
    commands        sans-IO command layer: line -> text + exit status
      key_commands, fault_commands, info_commands, args, render, result
    session         one SSH session: shell with line editor, or one command
    server          the asyncssh listener on trio-asyncio; serve_console
"""

from simulator.console.context import ConsoleContext, ConsoleSettings
from simulator.console.server import ConsoleSetupError, serve_console

__all__ = ["ConsoleContext", "ConsoleSettings", "ConsoleSetupError", "serve_console"]
