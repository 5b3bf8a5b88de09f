# Shared by the benchmarks; sourced, not run.
#
#   nginx_start DIR PORT    a local HTTP sink answering 200 with keep-alive
#                           (Debian's nginx-light, its own configuration)
#   nginx_stop DIR
#   nginx_requests PORT     requests nginx has answered so far
#   worker_rss PID          "VmRSS kB (private RssAnon kB)" of a process

nginx_start() {
	local dir=$1 port=$2
	mkdir -p "$dir"
	cat >"$dir/nginx.conf" <<NGINX
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    client_body_temp_path $dir/body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    server {
        listen 127.0.0.1:$port;
        location = /nginx_status { stub_status; }
        location / { default_type application/json; return 200 '{"ok":true}'; }
    }
}
NGINX
	nginx -c "$dir/nginx.conf" -p "$dir"
}

nginx_stop() {
	[ -f "$1/nginx.pid" ] && kill "$(cat "$1/nginx.pid")" 2>/dev/null || true
}

nginx_requests() {
	curl -s "http://127.0.0.1:$1/nginx_status" | awk 'NR == 3 { print $3 }'
}

# VmRSS counts the shared buffers the process touched; RssAnon is its own memory
worker_rss() {
	awk '/VmRSS/ { r = $2 } /RssAnon/ { a = $2 } END { print r " kB (private " a " kB)" }' "/proc/$1/status"
}
