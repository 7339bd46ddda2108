"""Background jobs: their list, one job's state, progress and message, and stopping one."""

from starlette.routing import Route

from .common import endpoint, ok


@endpoint
async def jobs(request, ctx):
    """``GET /api/jobs``: every job."""
    return ok({"jobs": [ctx.job_dict(j) for j in ctx.runner.list()]})


@endpoint
async def job(request, ctx):
    """``GET /api/jobs/{job}``: one job's state, progress, message and result."""
    return ok(ctx.job_dict(ctx.runner.get(request.path_params["job"])))


@endpoint
async def stop(request, ctx):
    """``POST /api/jobs/{job}/stop``: stop a job (a training resumes from its checkpoint)."""
    return ok(ctx.job_dict(ctx.runner.stop(request.path_params["job"])))


ROUTES = [
    Route("/api/jobs", jobs),
    Route("/api/jobs/{job}", job),
    Route("/api/jobs/{job}/stop", stop, methods=["POST"]),
]
