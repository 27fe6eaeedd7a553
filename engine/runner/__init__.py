"""The one driver of a strategy: bars -> representation -> components -> decisions -> book.

``assemble`` builds a strategy file's parts (components, costs, refit
schedule, event-loop settings, representation); ``schedule`` is the refit
schedule; ``decisions`` the one mapping from component outputs to decisions;
``walkforward`` walks whole blocks of history (the backtest's path) and
``stepper`` one closed bar at a time (the paper session's path); ``sources``
reads bars and funding from the store; ``drift`` monitors drift against
each refit's fitting window and applies its policy; ``encoders`` re-tunes the
encoder walk-forward; ``backtest`` runs a strategy over its out-of-sample
range. ``engine run``, ``engine audit``, paper sessions and
the paper report all go through these modules.
"""
