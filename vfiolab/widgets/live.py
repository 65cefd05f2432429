"""LiveView: a widget that reads its board again after every cell the learner runs.

A view made again (a cell run twice, or a fresh board from vfiolab.lab_board(fresh=True)) takes
over from the one it replaces, so redraw hooks never pile up. Subclasses provide `board`,
`widget`, refresh(force) and same_view(other).
"""
import html
import weakref

_watching = weakref.WeakSet()


def replaced(old, new):
    """Whether widget `new` takes over from `old`: old's board was replaced by a fresh one
    (vfiolab.lab_board(fresh=True)), or the same view was made again (a cell run twice). Views of
    two live boards side by side (say ITS and GICv2m) both keep redrawing."""
    import vfiolab
    if old.board is not new.board:
        return any(old.board is board for board in vfiolab._retired_lab_boards)
    return old.same_view(new)


def refresh_button(view, tooltip):
    """A Refresh button that reads `view`'s board again (every view has one, beside its picture)."""
    import ipywidgets as w
    button = w.Button(description="Refresh", icon="refresh", tooltip=tooltip,
                      layout=w.Layout(width="100px"))
    button.on_click(lambda _: view.refresh())
    return button


class LiveView:
    _shell = None

    def watch(self):
        """Redraw after every cell from now on, instead of the views this one replaces."""
        for old in list(_watching):
            if type(old) is type(self) and replaced(old, self):
                old.stop()
        _watching.add(self)
        try:
            from IPython import get_ipython
            self._shell = get_ipython()
        except ImportError:
            self._shell = None
        if self._shell is not None:
            self._shell.events.register("post_run_cell", self._after_cell)

    def stop(self):
        """Stop redrawing after each cell."""
        if self._shell is not None:
            try:
                self._shell.events.unregister("post_run_cell", self._after_cell)
            except ValueError:
                pass
            self._shell = None
        _watching.discard(self)

    def _after_cell(self, *_):
        try:
            self.refresh(force=False)
        except Exception:   # the board closed, say: keep the last picture
            self.stop()

    def _ipython_display_(self):
        from IPython.display import display
        display(self.widget)

    def still_html(self):
        """What a still picture shows: the view's HTML as drawn now (views with more panes add them)."""
        return self.html_text()

    def still(self, caption="Still picture"):
        """This moment as a picture (HTML, no button), to keep beside the live view."""
        from IPython.display import HTML
        return HTML(f"<div class='vfiolab-still' style='opacity:0.9'><i>{html.escape(caption)}:</i>"
                    f"{self.still_html()}</div>")
