"""The bare baseline: a FastAPI app whose only endpoint reads the body and answers its
length, served with the same uvicorn settings as ``tumour-response serve``
(uvloop, httptools, one worker, access log at INFO)."""

from __future__ import annotations

import argparse
import logging

import uvicorn
from fastapi import FastAPI, Request

app = FastAPI()


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/echo")
async def echo(request: Request) -> dict[str, int]:
    return {"len": len(await request.body())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s %(message)s")
    uvicorn.run(
        app, host="127.0.0.1", port=args.port, loop="uvloop", http="httptools", log_level="info"
    )


if __name__ == "__main__":
    main()
