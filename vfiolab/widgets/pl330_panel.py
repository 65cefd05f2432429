"""The PL330 panel: a live view of a DMA-330's threads, microcode, events and faults.

What to look at: the thread table (the manager and each channel: its state, the program counter,
SAR and DAR walking through memory, the loop counters counting down); the microcode listing, where
a triangle marks the instruction each channel's PC points at; the event row (which events are
set, enabled as interrupts, raised); the fault registers when something goes wrong.

Controls: Step runs the engine for that many cycles; Play keeps stepping until nothing is left to
do (press again to pause); Run to end runs until every thread stops or waits; Reset puts the PL330
back to its power-on state. The header says what the engine is doing, read from its threads.

The panel reads the engine (vfiolab.hw.pl330.PL330) directly, so looking never runs it. On the
sim board any system call (a register read in a cell, a poll) also lets the engine run: press the
buttons before touching the board again if you want to watch a program step by step, or build the
panel with PL330Panel.for_board(board, hold=True): then the board leaves the engine to the panel,
so even a copy your driver starts waits for Step, Play or Run (release() hands the clock back).
"""
import html

from ..hw import pl330 as hw
from ..hw.pl330_asm import disassemble
from .memory import BOX, MONO, RED, table

GREEN, AMBER = "#1a7f37", "#9a6700"


def engine_of(board, device="2c0a0000.dma"):
    """The PL330 engine behind `device` on the sim board."""
    model = board.model(device)
    engine = getattr(model, "engine", None)
    if engine is None:
        raise TypeError(f"{device} on this board has no PL330 engine to watch")
    return engine


def _bits(value, n):
    return [i for i in range(n) if value >> i & 1]


class PL330Panel:
    """A live panel over a PL330 engine. Build it with PL330Panel.for_board(board) on the sim
    board, or PL330Panel(engine) for a standalone vfiolab.hw.pl330.PL330."""

    def __init__(self, engine, channels=(0,), events=8, step_cycles=50, title="PL330"):
        import ipywidgets as w
        self.engine, self.channels, self.events, self.title = engine, tuple(channels), events, title
        self.programs = []          # (name, iova, code)
        self.views = []             # other views refreshed with this one
        self.start_cycles = engine.cycles
        self.html = w.HTML()
        self.cycles = w.BoundedIntText(value=step_cycles, min=1, max=1_000_000, description="cycles",
                                       tooltip="how many cycles Step (and each Play "
                                               "tick) runs the engine",
                                       layout=w.Layout(width="170px"))
        self.step_button = w.Button(description="Step", tooltip="run the engine this many cycles",
                                    icon="step-forward", layout=w.Layout(width="90px"))
        # A toggle, not ipywidgets' Play: Play's own buttons carry no tooltip.
        self.play = w.ToggleButton(description="Play", icon="play", value=False,
                                   tooltip="keep stepping (a Step every 0.15 s) until every "
                                           "thread is stopped or waiting; press again to pause",
                                   layout=w.Layout(width="90px"))
        self.run_button = w.Button(description="Run to end", icon="fast-forward",
                                   tooltip="run until every thread is stopped or waiting",
                                   layout=w.Layout(width="120px"))
        self.reset_button = w.Button(description="Reset", icon="undo", button_style="warning",
                                     tooltip="reset the PL330 as at power-on: channels stop, "
                                             "INTEN and events clear", layout=w.Layout(width="90px"))
        self.step_button.on_click(lambda _: self.step())
        self.run_button.on_click(lambda _: self.run())
        self.reset_button.on_click(lambda _: self.reset())
        self.play.observe(self._on_play, names="value")
        controls = w.HBox([self.cycles, self.step_button, self.play, self.run_button,
                           self.reset_button])
        self.widget = w.VBox([controls, self.html])
        self.widget.add_class("vfiolab-pl330")   # a stable selector for the browser tests
        self.refresh()

    @classmethod
    def for_board(cls, board, device="2c0a0000.dma", hold=False, **options):
        """The panel of `device` on the sim board; hold=True pauses the device's own clock
        (board.hold) so only the panel's buttons run it."""
        panel = cls(engine_of(board, device), **options)
        panel.held = (board, device) if hold else None
        if hold:
            board.hold(device)
        return panel

    def release(self):
        """Give the engine back to the board: board calls run it again (for_board(hold=True))."""
        held, self.held = getattr(self, "held", None), None
        if held:
            board, device = held
            board.hold(device, False)

    # --- what to show --------------------------------------------------------------------
    def show_program(self, code, iova, name="microcode", through_end=True):
        """List `code` (bytes at device address `iova`) with the channels' program counters;
        through_end: stop the listing after the first DMAEND (a buffer holds zeros after it)."""
        code = bytes(code)
        if through_end:
            lines = disassemble(code).splitlines()
            last = next((line for line in lines if line.endswith(": DMAEND")), None)
            if last is not None:
                code = code[:int(last.split(":", 1)[0], 16) + 1]
        self.programs = [p for p in self.programs if p[0] != name] + [(name, iova, code)]
        self.refresh()

    def link(self, *views):
        """Refresh these views (MemoryDiff, IommuView, ...) whenever the panel refreshes."""
        self.views.extend(views)
        self.refresh()
        return self

    # --- controls ------------------------------------------------------------------------
    def start(self, channel, pc):
        """DMAGO `channel` at `pc` through the debug registers of the engine itself, not through
        the board: on the sim board a store to DBGCMD runs the whole program at once, this way
        nothing runs until you step."""
        self.engine.start(channel, pc)
        self.refresh()

    def step(self, cycles=None):
        self.engine.run(max_cycles=cycles or self.cycles.value)
        self.refresh()

    def run(self):
        self.engine.run()
        self.refresh()

    def reset(self):
        self.play.value = False
        self.engine.reset()
        self.start_cycles = self.engine.cycles
        self.refresh()

    def _on_play(self, change):
        self.play.icon = "pause" if self.play.value else "play"
        if self.play.value:
            self._tick()

    def _tick(self):
        """One Play step, then the next one on the kernel's event loop while Play is on."""
        if not self.play.value:
            return
        self.step()
        if not self.has_work():
            self.play.value = False
            return
        import asyncio
        asyncio.get_event_loop().call_later(0.15, self._tick)

    def has_work(self):
        """True while some thread can still make progress by itself: executing, at a barrier,
        completing, killing, or faulting with bursts to finish (not stopped, faulting or waiting
        for an event or a peripheral)."""
        return any(t.state in (1, 2, 3, 5, 8, 9, 14) for t in self.engine.threads())

    def status(self):
        """What the engine is doing, from its threads (not from how the last run ended: a channel
        started since then is executing, though nothing has run it yet)."""
        threads = self.engine.threads()
        if self.has_work():
            return "has work left (Step, Play)"
        waiting = [f"{t.thread}" for t in threads if t.state in (4, 7)]
        if waiting:
            return f"waiting: {', '.join(waiting)} wait{'s' if len(waiting) == 1 else ''} for an " \
                   "event or a peripheral"
        return "idle: every thread is stopped or faulting"

    # --- rendering -----------------------------------------------------------------------
    def _threads(self):
        e = self.engine
        shown = ["manager"] + [c for c in range(e.channels)
                               if c in self.channels or e.thread(c).state != 0]
        rows = []
        for n in shown:
            t = e.thread(n)
            colour = RED if t.fault_names else GREEN if t.state in (1, 2, 3, 5, 9) else "inherit"
            state = f"<span style='color:{colour};font-weight:bold'>{html.escape(t.state_name)}</span>"
            name = "manager" if n == "manager" else f"channel {n}"
            if n == "manager":
                rows.append((name, state, f"0x{t.pc:08x}", "", "", "", "", "",
                             html.escape(", ".join(t.fault_names))))
                continue
            rows.append((name, state, f"0x{t.pc:08x}", f"0x{t.sar:08x}", f"0x{t.dar:08x}",
                         str(t.lc0), str(t.lc1), f"{t.mfifo_bytes}",
                         f"<span style='color:{RED}'>{html.escape(', '.join(t.fault_names))}</span>"))
        return table(["thread", "state", "PC", "SAR", "DAR", "LC0", "LC1", "bytes in MFIFO",
                      "fault"], rows, escape=False)

    def _events(self):
        e = self.engine
        inten, ris, mis = e.readl(hw.INTEN), e.readl(hw.INT_EVENT_RIS), e.readl(hw.INTMIS)
        cells = []
        for i in range(self.events):
            on, enabled, raised = ris >> i & 1, inten >> i & 1, mis >> i & 1
            colour = RED if raised else AMBER if on else "#eee"
            label = "IRQ raised" if raised else "event set" if on else "quiet"
            cells.append(f"<td style='padding:1px 6px;text-align:center;background:{colour};"
                         f"color:{'white' if raised else 'black'}'>E{i}<br><small>"
                         f"{'INTEN' if enabled else 'no INTEN'}<br>{label}</small></td>")
        return (f"<table style='border-collapse:separate;border-spacing:2px;{MONO}'><tr>"
                f"{''.join(cells)}</tr></table>")

    def _faults(self):
        e = self.engine
        fsrd, fsrc = e.readl(hw.FSRD), e.readl(hw.FSRC)
        if not fsrd and not fsrc and not e.abort_line:
            return "<div style='color:#1a7f37'>No faults (FSRD = FSRC = 0).</div>"
        parts = [f"FSRD = 0x{fsrd:x}", f"FSRC = 0x{fsrc:08x}"]
        if fsrd:
            ftrd = e.readl(hw.FTRD)
            names = [n for b, n in hw.MANAGER_FAULT_NAMES.items() if ftrd >> b & 1]
            parts.append(f"FTRD = 0x{ftrd:08x} ({', '.join(names)})")
        for c in _bits(fsrc, e.channels):
            ftr = e.readl(hw.FTR(c))
            names = [n for b, n in hw.CHANNEL_FAULT_NAMES.items() if ftr >> b & 1]
            parts.append(f"FTR{c} = 0x{ftr:08x} ({', '.join(names)})")
        abort = " The abort interrupt line is high." if e.abort_line else ""
        return (f"<div style='color:{RED};font-weight:bold'>{html.escape('; '.join(parts))}."
                f"{abort}</div>")

    def _listing(self):
        if not self.programs:
            return ""
        pcs = {}
        for c in range(self.engine.channels):
            t = self.engine.thread(c)
            if t.state != 0 or c in self.channels:
                pcs.setdefault(t.pc, []).append(f"ch{c}")
        out = []
        for name, iova, code in self.programs:
            lines = []
            for line in disassemble(code, iova).splitlines():
                addr = int(line.split(":", 1)[0], 16)
                mark = pcs.get(addr)
                text = html.escape(line)
                if mark:
                    text = (f"<span style='background:#fff8c5;font-weight:bold'>&#9654; {text}"
                            f"   &lt;- PC of {', '.join(mark)}</span>")
                else:
                    text = "  " + text
                lines.append(text)
            out.append(f"<div><b>{html.escape(name)}</b> at IOVA 0x{iova:x} ({len(code)} bytes)"
                       f"<pre style='{MONO};margin:2px 0;max-height:260px;overflow:auto'>"
                       f"{chr(10).join(lines)}</pre></div>")
        return "".join(out)

    def refresh(self):
        e = self.engine
        busy = self.status()
        abort = f"<b style='color:{RED}'>HIGH</b>" if e.abort_line else "low"
        self.html.value = (
            f"<div style='{BOX}'><b>{html.escape(self.title)}</b> &nbsp; {e.cycles - self.start_cycles} "
            f"cycles &middot; engine {busy} &middot; IRQ lines 0x{e.irq_lines:x} &middot; abort line "
            f"{abort}"
            f"{self._threads()}<div style='margin-top:4px'><b>Events</b> (INTEN, INT_EVENT_RIS, "
            f"INTMIS)</div>{self._events()}{self._faults()}{self._listing()}</div>")
        for view in self.views:
            view.refresh()

    def still(self):
        """A still picture of the panel as it is now (HTML, no buttons): shown beside the live
        panel, it keeps the moment the text talks about after the live one has moved on."""
        from IPython.display import HTML
        return HTML(f"<div style='opacity:0.9'><i>Still picture, at {self.engine.cycles - self.start_cycles} "
                    f"cycles:</i>{self.html.value}</div>")

    def _ipython_display_(self):
        from IPython.display import display
        display(self.widget)

    def text(self):
        """One line per shown thread (for logs and tests)."""
        e = self.engine
        return "\n".join(f"{t.thread}: {t.state_name} pc=0x{t.pc:x} sar=0x{t.sar:x} "
                         f"dar=0x{t.dar:x} lc0={t.lc0} lc1={t.lc1}"
                         for t in [e.thread("manager")] + [e.thread(c) for c in self.channels])
