// Live progress of a run page: poll the run's events (JSON) every second until it is final.
(function () {
  const box = document.getElementById("progress");
  if (!box) return;
  const run = box.dataset.run;
  let next = 0;
  let wasFinal = box.dataset.final === "true";
  async function poll() {
    let data;
    try {
      const r = await fetch(`/api/runs/${run}/events?after=${next}`, {credentials: "same-origin"});
      if (!r.ok) return;
      data = await r.json();
    } catch (e) { return; }
    for (const line of data.lines) box.textContent += line + "\n";
    next = data.next;
    box.scrollTop = box.scrollHeight;
    const state = document.getElementById("state");
    if (state) { state.textContent = data.state; state.className = "state " + data.state; }
    for (const s of data.stages) {
      const row = document.querySelector(`#stages tr[data-stage="${s.name}"]`);
      if (!row) continue;
      row.querySelector(".st").innerHTML = `<span class="state ${s.state}">${s.state}</span>`;
      row.querySelector(".sec").textContent = s.seconds.toFixed(1);
      row.querySelector(".ca").textContent = s.cached ? "yes" : "";
    }
    if (data.final && !wasFinal) { location.reload(); return; }  // the report, plots and VHDL are there now
    if (!data.final) setTimeout(poll, 1000);
  }
  poll();
})();
