/**
 * Configuration files the bench writes into its temp dir at run time: the backend (nginx `http`, TLS and plain), the
 * peers (HAProxy `mode tcp`, nginx `stream`: TCP passthrough to one backend) and wrk's reporting script.
 *
 * @module
 */

/** Where the nginx `stream` module lives on Debian/Ubuntu (`libnginx-mod-stream`). */
export const NGINX_STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so";

/** The backend's answer: tiny, so that the systems under test and not the backend decide the numbers. */
export const BACKEND_BODY = "ok\n";

function nginxCommon(dir: string, name: string): string {
  return `worker_processes 1;
daemon off;
pid ${dir}/${name}.pid;
error_log ${dir}/${name}_error.log warn;
worker_rlimit_nofile 16384;
events { worker_connections 8192; multi_accept on; }
`;
}

/** nginx `http` backend: HTTPS on `tlsPort` (self-signed cert), plain HTTP on `plainPort`, both answering `ok`. */
export function backendNginxConf(dir: string, ports: { tlsPort: number; plainPort: number }): string {
  return `${nginxCommon(dir, "backend")}
http {
  access_log off;
  client_body_temp_path ${dir}/backend_body;
  proxy_temp_path ${dir}/backend_proxy;
  fastcgi_temp_path ${dir}/backend_fastcgi;
  uwsgi_temp_path ${dir}/backend_uwsgi;
  scgi_temp_path ${dir}/backend_scgi;
  keepalive_requests 1000000000;
  keepalive_timeout 300s;
  default_type text/plain;
  ssl_protocols TLSv1.3;
  ssl_session_cache shared:SSL:1m;
  server {
    listen 127.0.0.1:${ports.tlsPort} ssl backlog=4096;
    ssl_certificate ${dir}/cert.pem;
    ssl_certificate_key ${dir}/key.pem;
    location / { return 200 "${BACKEND_BODY.replace("\n", "\\n")}"; }
  }
  server {
    listen 127.0.0.1:${ports.plainPort} backlog=4096;
    location / { return 200 "${BACKEND_BODY.replace("\n", "\\n")}"; }
  }
}
`;
}

/** HAProxy in TCP mode, one thread, one backend server, no health checks (the peers' cheapest setup). */
export function haproxyConf(listenPort: number, backendPort: number): string {
  return `global
  maxconn 4096
  nbthread 1
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend fe
  bind 127.0.0.1:${listenPort} backlog 4096
  default_backend be
backend be
  server s1 127.0.0.1:${backendPort}
`;
}

/** nginx `stream`: one worker, TCP passthrough to one backend. */
export function nginxStreamConf(dir: string, name: string, listenPort: number, backendPort: number): string {
  return `load_module ${NGINX_STREAM_MODULE};
${nginxCommon(dir, name)}
stream {
  upstream be { server 127.0.0.1:${backendPort}; }
  server {
    listen 127.0.0.1:${listenPort} backlog=4096;
    proxy_pass be;
  }
}
`;
}

/** A wrk script whose `done` prints one JSON line with the totals and the latency percentiles in microseconds. */
export const WRK_REPORT_LUA = `done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\\nWRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"max_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}\\n',
    summary.requests, summary.duration, summary.bytes, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
`;
