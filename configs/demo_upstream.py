"""The demo's services: small aiohttp apps that echo what reached them, for `make run`.

python configs/demo_upstream.py [AUTH_PORT BILLING_PORT [PROXY_PORT]]
"""

import asyncio
import sys

from aiohttp import web


def echo_app(service: str) -> web.Application:
    async def echo(request: web.Request) -> web.Response:
        body = await request.text()
        return web.json_response(
            {
                "service": service,
                "method": request.method,
                "path": request.path_qs,
                "headers": dict(request.headers),
                "body": body,
            }
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    return app


def try_lines(proxy: str) -> str:
    curl = f"curl -s -x http://127.0.0.1:{proxy}"
    return f"""
Try (each line makes one demo hook fire):
  {curl} -X POST -H 'x-tenant: acme' -H 'x-role: admin' http://auth.demo.test/v1/login  # Python traces
  {curl} http://auth.demo.test/v1/profile               # JavaScript adds x-demo-hook on the way in
  {curl} -X PUT -d '{{"email": "nobody"}}' http://auth.demo.test/v1/profile  # TypeScript refuses it: 400
  {curl} -i -X DELETE http://auth.demo.test/v1/users/42  # bash blocks: 403
  {curl} http://billing.demo.test/v1/invoices/demo      # Python answers with a mock invoice
  {curl} -i http://billing.demo.test/v1/invoices        # JavaScript edits the response
"""


async def main(auth_port: int, billing_port: int, proxy_port: int) -> None:
    runners = []
    for service, port in (("auth", auth_port), ("billing", billing_port)):
        runner = web.AppRunner(echo_app(service), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
    print(f"demo services: auth on 127.0.0.1:{auth_port}, billing on 127.0.0.1:{billing_port}", flush=True)
    print(try_lines(proxy_port), flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        for runner in runners:
            await runner.cleanup()


if __name__ == "__main__":
    ports = [int(arg) for arg in sys.argv[1:]] or [9001, 9002]
    auth, billing, proxy = (ports + [9001, 9002, 8080][len(ports) :])[:3]
    asyncio.run(main(auth, billing, proxy))
