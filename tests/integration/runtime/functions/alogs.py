"""An async test function that logs a lot: ``/spam?n=200&size=4096`` writes
``n`` log lines of ``size`` bytes each through ``context.logger``."""

import os


async def handle(event, context):
    if context.path == "/spam":
        n = int(context.query.get("n", "200"))
        size = int(context.query.get("size", "4096"))
        filler = "x" * size
        for i in range(n):
            context.logger.info("spam", i=i, filler=filler)
        return {"logged": n}
    return {"async": True, "pid": os.getpid(), "path": context.path}
