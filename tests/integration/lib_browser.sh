# lib_browser.sh — a real browser for the console's tests, sourced after
# lib.sh:
#
#   . "$(dirname "$0")/lib_browser.sh"
#   browser_need          fails unless chromium and chromium-driver are here
#   browser_start         chromedriver on a free port and one headless
#                         Chromium session (WD, SESSION): Italian, a
#                         1280x1000 window, no network beyond 127.0.0.1,
#                         self-signed certificates taken, downloads into
#                         DIR/downloads; the session ends before the driver
#                         stops (before_cleanup)
#   wd METHOD PATH [JSON] a WebDriver command: its answer's value
#   js SCRIPT             the script's result in the page (a string)
#   go URL                opens URL in the session's window

browser_need() {
	if ! command -v chromedriver >/dev/null || ! command -v chromium >/dev/null; then
		echo "FAIL: chromium and chromium-driver are needed (scripts/setup installs them)" >&2
		exit 1
	fi
}

before_cleanup() {
	[ -n "${SESSION:-}" ] && curl -s -X DELETE "$WD/session/$SESSION" >/dev/null 2>&1
}

browser_start() {
	local try caps
	WDPORT=$((20000 + RANDOM % 20000))
	for try in 1 2 3 4 5; do
		chromedriver --port=$WDPORT --allowed-ips=127.0.0.1 >"$DIR/chromedriver.log" 2>&1 &
		WDPID=$!
		PIDS+=($WDPID)
		if wait_for 20 curl -sf "http://127.0.0.1:$WDPORT/status"; then break; fi
		kill $WDPID 2>/dev/null
		WDPORT=$((20000 + RANDOM % 20000))
	done
	WD="http://127.0.0.1:$WDPORT"
	mkdir -p "$DIR/downloads"
	caps=$(jq -nc --arg dir "$DIR/chrome" --arg dl "$DIR/downloads" '{capabilities: {alwaysMatch: {
	  browserName: "chrome", acceptInsecureCerts: true,
	  "goog:chromeOptions": {binary: "/usr/bin/chromium",
	  prefs: {"download.default_directory": $dl, "download.prompt_for_download": false},
	  args: ["--headless=new", "--no-sandbox",
	  "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000", ("--user-data-dir=" + $dir),
	  "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
	  "--disable-component-update", "--disable-sync", "--disable-extensions",
	  "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1", "--lang=it-IT"]}}}}')
	SESSION=$(curl -s -X POST -H 'Content-Type: application/json' -d "$caps" "$WD/session" | jq -r '.value.sessionId // empty')
	[ -n "$SESSION" ] || fail "chromedriver made no session: $(tail -n 20 "$DIR/chromedriver.log")"
}

wd() {
	curl -s -X "$1" -H 'Content-Type: application/json' ${3:+-d "$3"} "$WD/session/$SESSION$2" | jq -c '.value'
}
js() {
	wd POST /execute/sync "$(jq -nc --arg s "$1" '{script: $s, args: []}')" | jq -r '. // ""'
}
go() { wd POST /url "$(jq -nc --arg u "$1" '{url: $u}')" >/dev/null; }
