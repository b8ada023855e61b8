"""The kernel layer: IPython magics, the notebook session, the widget, server runs watched live."""
