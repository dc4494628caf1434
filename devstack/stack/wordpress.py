"""A private, real WordPress 6.x on loopback (MariaDB + php-fpm + nginx from Debian) under one state directory.

Used by the portal contract tests and by rehearsals that want the real thing instead of the sandbox. Needs the
Debian packages `wordpress php-fpm php-mysql mariadb-server nginx` (installed by scripts/setup.sh) and root, to
run the servers as `mysql`/`www-data` and to drop one pointer file into /etc/wordpress (see `_debian_config`).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from devstack.stack.process import PidFile, ServiceDied, spawn, stop_group, wait_until

WP_ROOT = Path("/usr/share/wordpress")
DEBIAN_CONFIG_DIR = Path("/etc/wordpress")
SITE_TIMEZONE = "Asia/Ho_Chi_Minh"  # non-UTC on purpose: date vs date_gmt mistakes must show in tests
IS_ROOT = os.geteuid() == 0


@dataclass(frozen=True)
class WordPressInfo:
    base_url: str
    user: str
    app_password: str = field(repr=False)
    credentials_file: Path | None = None


def _php_fpm_binary() -> str:
    found = sorted(Path("/usr/sbin").glob("php-fpm*"))
    if not found:
        raise RuntimeError("php-fpm not found: install the Debian packages php-fpm php-mysql (./bridgecast setup)")
    return str(found[-1])


def _require(binary: str, package: str) -> str:
    path = shutil.which(binary) or shutil.which(binary, path="/usr/sbin:/usr/bin")
    if not path:
        raise RuntimeError(f"{binary} not found: install the Debian package {package} (./bridgecast setup)")
    return path


def _write_private(path: Path, text: str, mode: int = 0o600, group: str | None = None) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    if group and IS_ROOT:
        shutil.chown(tmp, "root", group)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _php_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class WordPress:
    """`WordPress(state_dir, port).start()` → `WordPressInfo`; `.stop()`; both idempotent."""

    def __init__(self, state_dir: str | os.PathLike, port: int, *, user: str = "bridgecast",
                 timezone: str = SITE_TIMEZONE, client_max_body_size: str = "512m", php_memory_limit: str = "256M",
                 start_timeout_s: float = 90.0):
        self.state = Path(state_dir).resolve()
        self.port = port
        self.user = user
        self.timezone = timezone
        self.client_max_body_size = client_max_body_size
        self.php_memory_limit = php_memory_limit
        self.start_timeout_s = start_timeout_s
        # One Debian config name per state dir, so the stack's WordPress and a test run's never share a database.
        self.config_name = "bridgecast-" + hashlib.sha256(str(self.state).encode()).hexdigest()[:12]

    # --- layout ------------------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def mysql_dir(self) -> Path:  # owned by `mysql`: data, socket and its pid file
        return self.state / "mysql"

    @property
    def mysql_socket(self) -> Path:
        return self.mysql_dir / "mysqld.sock"

    @property
    def run_dir(self) -> Path:
        return self.state / "run"

    @property
    def log_dir(self) -> Path:
        return self.state / "log"

    @property
    def conf_dir(self) -> Path:
        return self.state / "conf"

    @property
    def content_dir(self) -> Path:
        return self.state / "wp-content"

    @property
    def credentials_file(self) -> Path:
        return self.state / "credentials.json"

    @property
    def _debian_config(self) -> Path:
        # Debian's /usr/share/wordpress/wp-config.php only loads /etc/wordpress/config-$WORDPRESS_CONFIG.php; this
        # pointer holds no secret and just includes our generated config from the state dir.
        return DEBIAN_CONFIG_DIR / f"config-{self.config_name}.php"

    def _pidfile(self, name: str) -> PidFile:
        return PidFile(self.run_dir / f"{name}.pid")

    # --- public API --------------------------------------------------------------------------------------
    def running(self) -> bool:
        return all(self._pidfile(n).read() is not None for n in ("mariadb", "php-fpm", "nginx"))

    def start(self) -> WordPressInfo:
        """Start what is not running, install WordPress on first start, return URL and credentials."""
        self._check_tools()
        self._prepare_dirs()
        secrets_ = self._local_secrets()
        if self._pidfile("mariadb").read() is None:
            self._start_mariadb(secrets_)
        if self._pidfile("php-fpm").read() is None:
            self._write_wp_config(secrets_)
            self._start_php_fpm()
        if self._pidfile("nginx").read() is None:
            self._start_nginx()
        wait_until(self._rest_ready, timeout_s=self.start_timeout_s, what="WordPress REST API",
                   log_path=self.log_dir / "nginx-error.log")
        return self._ensure_installed(secrets_)

    def stop(self) -> list[str]:
        """Stop nginx, php-fpm and MariaDB (in that order); returns what was running."""
        stopped = []
        for name in ("nginx", "php-fpm", "mariadb"):
            if stop_group(self._pidfile(name), grace_s=30):
                stopped.append(name)
        return stopped

    def uninstall(self) -> None:
        """Stop and remove the /etc/wordpress pointer; the state dir is left for the caller to delete."""
        self.stop()
        self._debian_config.unlink(missing_ok=True)

    def info(self) -> WordPressInfo:
        data = json.loads(self.credentials_file.read_text())
        return WordPressInfo(base_url=self.base_url, user=data["user"], app_password=data["app_password"],
                             credentials_file=self.credentials_file)

    # --- steps -------------------------------------------------------------------------------------------
    def _check_tools(self) -> None:
        for binary, package in (("mariadbd", "mariadb-server"), ("mariadb-install-db", "mariadb-server"),
                                ("nginx", "nginx"), ("php", "php-cli")):
            _require(binary, package)
        _php_fpm_binary()
        if not (WP_ROOT / "wp-settings.php").exists():
            raise RuntimeError("WordPress not found in /usr/share/wordpress: install the Debian package wordpress")
        if not IS_ROOT:
            raise RuntimeError("the WordPress harness runs MariaDB/php-fpm as mysql/www-data and writes "
                               f"{self._debian_config}: run it as root")

    def _prepare_dirs(self) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        self.state.chmod(0o755)  # www-data (php-fpm) and mysql must traverse it
        for d in (self.run_dir, self.log_dir, self.conf_dir, self.state / "tmp"):
            d.mkdir(exist_ok=True)
        self.mysql_dir.mkdir(exist_ok=True)
        shutil.chown(self.mysql_dir, "mysql", "mysql")
        self.mysql_dir.chmod(0o755)  # php-fpm (www-data) reaches the socket here; data/ itself stays 0700
        for d in (self.content_dir, self.content_dir / "uploads", self.content_dir / "plugins",
                  self.content_dir / "themes", self.log_dir / "php"):
            d.mkdir(exist_ok=True)
            shutil.chown(d, "www-data", "www-data")

    def _local_secrets(self) -> dict:
        path = self.state / "secrets.json"
        if path.exists():
            return json.loads(path.read_text())
        data = {"db_password": secrets.token_urlsafe(24), "admin_password": secrets.token_urlsafe(24),
                "salts": {k: secrets.token_urlsafe(48) for k in (
                    "AUTH_KEY", "SECURE_AUTH_KEY", "LOGGED_IN_KEY", "NONCE_KEY",
                    "AUTH_SALT", "SECURE_AUTH_SALT", "LOGGED_IN_SALT", "NONCE_SALT")}}
        _write_private(path, json.dumps(data))
        return data

    def _mysql(self, sql: str) -> str:
        # SQL goes through stdin, never argv (it may carry the database password).
        result = subprocess.run(["mariadb", "--no-defaults", f"--socket={self.mysql_socket}", "-uroot", "-N", "-B"],
                                input=sql, capture_output=True, text=True, timeout=30)
        if result.returncode != 0:
            raise RuntimeError(f"MariaDB refused the set-up SQL: {result.stderr.strip()}")
        return result.stdout

    def _start_mariadb(self, secrets_: dict) -> None:
        datadir = self.mysql_dir / "data"
        log = self.log_dir / "mariadb.log"
        if not (datadir / "mysql").exists():
            with open(log, "ab") as fh:
                subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={datadir}", "--user=mysql",
                                "--auth-root-authentication-method=socket", "--skip-test-db",
                                "--skip-name-resolve"], stdout=fh, stderr=subprocess.STDOUT, check=True, timeout=120)
        # Unix socket only: nothing listens on TCP, so it cannot clash with a system MariaDB or another harness.
        argv = ["mariadbd", "--no-defaults", f"--datadir={datadir}", f"--socket={self.mysql_socket}",
                f"--pid-file={self.mysql_dir / 'mariadbd.pid'}", "--skip-networking", "--user=mysql",
                f"--log-error={self.mysql_dir / 'error.log'}", "--innodb-buffer-pool-size=64M",
                "--skip-log-bin", "--skip-name-resolve", "--character-set-server=utf8mb4",
                "--collation-server=utf8mb4_unicode_ci", "--innodb-flush-log-at-trx-commit=2"]
        spawn(argv, pidfile=self._pidfile("mariadb"), log_path=log)
        wait_until(lambda: self._mysql("SELECT 1") == "1\n", timeout_s=60, what="MariaDB",
                   log_path=self.mysql_dir / "error.log", interval_s=0.2)
        password = secrets_["db_password"]  # token_urlsafe: no quote to escape
        self._mysql("CREATE DATABASE IF NOT EXISTS wordpress CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;\n"
                    f"CREATE USER IF NOT EXISTS 'wordpress'@'localhost' IDENTIFIED BY '{password}';\n"
                    "GRANT ALL PRIVILEGES ON wordpress.* TO 'wordpress'@'localhost';\n")

    def _write_wp_config(self, secrets_: dict) -> None:
        salts = "\n".join(f"define({_php_string(k)}, {_php_string(v)});" for k, v in secrets_["salts"].items())
        config = f"""<?php
// Generated by devstack.stack.wordpress for {self.state}; holds local secrets, mode 640 root:www-data.
define('DB_NAME', 'wordpress');
define('DB_USER', 'wordpress');
define('DB_PASSWORD', {_php_string(secrets_['db_password'])});
define('DB_HOST', {_php_string('localhost:' + str(self.mysql_socket))});
define('DB_CHARSET', 'utf8mb4');
define('DB_COLLATE', '');
{salts}
$table_prefix = 'wp_';
define('WP_HOME', {_php_string(self.base_url)});
define('WP_SITEURL', {_php_string(self.base_url)});
define('WP_CONTENT_DIR', {_php_string(str(self.content_dir))});
// Application Passwords over plain http are only offered to a 'local' environment (media-notes §7).
define('WP_ENVIRONMENT_TYPE', 'local');
// No calls to wordpress.org from a loopback test site (update checks, dashboard feeds).
define('WP_HTTP_BLOCK_EXTERNAL', true);
define('AUTOMATIC_UPDATER_DISABLED', true);
define('FS_METHOD', 'direct');
define('WP_DEBUG', false);
"""
        _write_private(self.conf_dir / "wp-config.php", config, mode=0o640, group="www-data")
        DEBIAN_CONFIG_DIR.mkdir(parents=True, exist_ok=True)
        self._debian_config.write_text(
            f"<?php\n// Bridgecast WordPress harness pointer (no secrets); remove with "
            f"`python -m devstack.stack.wordpress uninstall --state {self.state}`.\n"
            f"require {_php_string(str(self.conf_dir / 'wp-config.php'))};\n")
        self._debian_config.chmod(0o644)

    def _start_php_fpm(self) -> None:
        sock = self.run_dir / "php-fpm.sock"
        conf = f"""[global]
pid = {self.run_dir / 'php-fpm-master.pid'}
error_log = {self.log_dir / 'php-fpm.log'}
daemonize = no

[bridgecast-wordpress]
user = www-data
group = www-data
listen = {sock}
listen.owner = www-data
listen.group = www-data
listen.mode = 0660
pm = dynamic
pm.max_children = 6
pm.start_servers = 2
pm.min_spare_servers = 1
pm.max_spare_servers = 3
catch_workers_output = yes
php_admin_value[memory_limit] = {self.php_memory_limit}
php_admin_value[upload_max_filesize] = {self.client_max_body_size.upper().rstrip('B')}
php_admin_value[post_max_size] = {self.client_max_body_size.upper().rstrip('B')}
php_admin_value[max_execution_time] = 300
php_admin_value[error_log] = {self.log_dir / 'php' / 'error.log'}
php_admin_flag[log_errors] = on
php_admin_flag[display_errors] = off
"""
        path = self.conf_dir / "php-fpm.conf"
        path.write_text(conf)
        spawn([_php_fpm_binary(), "--nodaemonize", "--fpm-config", str(path)], pidfile=self._pidfile("php-fpm"),
              log_path=self.log_dir / "php-fpm.log")
        wait_until(sock.exists, timeout_s=30, what="php-fpm", log_path=self.log_dir / "php-fpm.log", interval_s=0.1)

    def _start_nginx(self) -> None:
        tmp = self.state / "tmp"
        for d in ("client_body", "fastcgi", "proxy", "uwsgi", "scgi"):
            (tmp / d).mkdir(exist_ok=True)
            shutil.chown(tmp / d, "www-data", "www-data")
        conf = f"""user www-data;
worker_processes 1;
error_log {self.log_dir / 'nginx-error.log'} warn;
events {{ worker_connections 256; }}
http {{
  include /etc/nginx/mime.types;
  default_type application/octet-stream;
  access_log {self.log_dir / 'nginx-access.log'};
  client_body_temp_path {tmp / 'client_body'};
  fastcgi_temp_path {tmp / 'fastcgi'};
  proxy_temp_path {tmp / 'proxy'};
  uwsgi_temp_path {tmp / 'uwsgi'};
  scgi_temp_path {tmp / 'scgi'};
  client_max_body_size {self.client_max_body_size};
  server {{
    listen 127.0.0.1:{self.port};
    server_name 127.0.0.1;
    root {WP_ROOT};
    index index.php;
    location ^~ /wp-content/ {{ alias {self.content_dir}/; }}
    location / {{ try_files $uri $uri/ /index.php?$args; }}
    location ~ \\.php$ {{
      include /etc/nginx/fastcgi_params;
      fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
      fastcgi_param WORDPRESS_CONFIG {self.config_name};
      # Debian 12's nginx drops the port from the Host WordPress sees; front pages then redirect forever (§7).
      fastcgi_param HTTP_HOST $host:$server_port;
      fastcgi_read_timeout 300s;
      fastcgi_pass unix:{self.run_dir / 'php-fpm.sock'};
    }}
  }}
}}
"""
        path = self.conf_dir / "nginx.conf"
        path.write_text(conf)
        pid_directive = f"pid {self.run_dir / 'nginx-master.pid'};"
        check = subprocess.run(["nginx", "-t", "-q", "-p", str(self.state), "-c", str(path), "-g", pid_directive],
                               capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"nginx rejected {path}:\n{check.stderr.strip()}")
        spawn(["nginx", "-p", str(self.state), "-c", str(path), "-g", f"daemon off; {pid_directive}"],
              pidfile=self._pidfile("nginx"), log_path=self.log_dir / "nginx.log")

    def _rest_ready(self) -> bool:
        for name in ("mariadb", "php-fpm", "nginx"):  # e.g. nginx exits at once when the port is taken
            if self._pidfile(name).read() is None:
                raise ServiceDied(f"{name} of the WordPress harness exited; see {self.log_dir}")
        response = requests.get(f"{self.base_url}/wp-json/", timeout=5, allow_redirects=False)
        if response.status_code == 200:
            return "wp/v2" in response.json().get("namespaces", [])
        # Before wp_install() WordPress redirects to its installer: nginx, php-fpm and MariaDB all answered.
        return response.status_code in (301, 302)

    def _credentials_work(self) -> bool:
        if not self.credentials_file.exists():
            return False
        info = self.info()
        response = requests.get(f"{self.base_url}/wp-json/wp/v2/users/me", params={"context": "edit"},
                                auth=(info.user, info.app_password), timeout=10)
        return response.status_code == 200

    def _ensure_installed(self, secrets_: dict) -> WordPressInfo:
        if self._credentials_work():
            return self.info()
        script = self.state / "conf" / "install.php"
        script.write_text(_INSTALL_PHP)
        request = {"host": f"127.0.0.1:{self.port}", "config": self.config_name, "user": self.user,
                   "admin_password": secrets_["admin_password"], "timezone": self.timezone,
                   "email": f"{self.user}@example.invalid", "title": "Cổng thông tin Bridgecast (harness)"}
        # Credentials travel through stdin/stdout pipes only: never argv, environment or a log file.
        result = subprocess.run(["runuser", "-u", "www-data", "--", "php", "-d", "display_errors=stderr",
                                 str(script)], input=json.dumps(request), capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"WordPress install script failed (rc {result.returncode}):\n{result.stderr[-2000:]}")
        try:
            answer = json.loads(result.stdout.strip().splitlines()[-1])
        except (IndexError, ValueError):  # wp_die() prints an HTML page and exits 0
            text = re.sub(r"<[^>]+>|\s+", " ", result.stdout).strip()
            raise RuntimeError(f"WordPress install script did not finish: {text[-800:]}") from None
        _write_private(self.credentials_file, json.dumps({
            "base_url": self.base_url, "user": self.user, "app_password": answer["app_password"],
            "app_password_uuid": answer["uuid"]}))
        wait_until(self._credentials_work, timeout_s=30, what="WordPress Application Password",
                   log_path=self.log_dir / "php" / "error.log")
        return self.info()


# Runs as www-data with WordPress's own installer API; reads its request as JSON on stdin.
_INSTALL_PHP = r"""<?php
$request = json_decode(stream_get_contents(STDIN), true);
$_SERVER['HTTP_HOST'] = $request['host'];
$_SERVER['SERVER_NAME'] = '127.0.0.1';
$_SERVER['REQUEST_URI'] = '/';
$_SERVER['WORDPRESS_CONFIG'] = $request['config'];
define('WP_INSTALLING', true);
require '/usr/share/wordpress/wp-load.php';
require_once ABSPATH . 'wp-admin/includes/upgrade.php';
if (!is_blog_installed()) {
    $result = wp_install($request['title'], $request['user'], $request['email'], false, '',
                         wp_slash($request['admin_password']), 'vi');
    if (is_wp_error($result)) { fwrite(STDERR, $result->get_error_message()); exit(2); }
}
update_option('timezone_string', $request['timezone']);
update_option('gmt_offset', '');
update_option('blog_charset', 'UTF-8');
global $wp_rewrite;
$wp_rewrite->set_permalink_structure('/%postname%/');  // pretty links make /wp-json/ routable
flush_rewrite_rules(false);
$user = get_user_by('login', $request['user']);
if (!$user) { fwrite(STDERR, "admin user missing after install"); exit(3); }
foreach (WP_Application_Passwords::get_user_application_passwords($user->ID) as $item) {
    if ($item['name'] === 'bridgecast') {
        WP_Application_Passwords::delete_application_password($user->ID, $item['uuid']);
    }
}
$created = WP_Application_Passwords::create_new_application_password($user->ID, array('name' => 'bridgecast'));
if (is_wp_error($created)) { fwrite(STDERR, $created->get_error_message()); exit(4); }
echo json_encode(array('app_password' => $created[0], 'uuid' => $created[1]['uuid'])), "\n";
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.stack.wordpress",
                                     description="Start/stop a private WordPress on loopback.")
    parser.add_argument("command", choices=["up", "down", "status", "uninstall"])
    parser.add_argument("--state", required=True, help="state directory (database, uploads, configs, pids)")
    parser.add_argument("--port", type=int, default=18095)
    args = parser.parse_args(argv)
    wp = WordPress(args.state, args.port)
    if args.command == "up":
        t0 = time.monotonic()
        was_running = wp.running()
        info = wp.start()
        state = "running" if was_running else f"started in {time.monotonic() - t0:.1f}s"
        print(f"wordpress {state}: {info.base_url} user={info.user} credentials={info.credentials_file}")
    elif args.command == "down":
        print("stopped: " + (", ".join(wp.stop()) or "nothing was running"))
    elif args.command == "uninstall":
        wp.uninstall()
        print(f"stopped and removed {wp._debian_config}; state left in {wp.state}")
    else:
        print("running" if wp.running() else "stopped")
        return 0 if wp.running() else 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
