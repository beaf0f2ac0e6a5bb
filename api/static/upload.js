// Airlock's upload page. Sends the chosen files to the tus 1.0.0 endpoint
// (creation with Upload-Length and Upload-Metadata, then PATCH in 8 MiB
// slices), shows each file's progress, resumes after a dropped connection
// (HEAD for the server's offset, then PATCH from there, with backoff), and
// confirms the upload when every file is in. No framework, no build step.
(function () {
  'use strict';

  var CHUNK = 8 * 1024 * 1024;
  var MAX_RETRIES = 8;
  var TUS = '1.0.0';

  var root = document.getElementById('uploader');
  if (!root) { return; }
  var meta = document.querySelector('meta[name="csrf-token"]');
  var csrf = meta ? meta.content : '';
  var endpoint = new URL(root.dataset.endpoint, location.href).href;
  var requestID = root.dataset.request;
  var maxFileSize = parseInt(root.dataset.maxFileSize || '0', 10);
  var input = document.getElementById('file-input');
  var tbody = document.querySelector('#upload-files tbody');
  var confirmBtn = document.getElementById('confirm');
  var statusEl = document.getElementById('upload-status');
  var queue = [];
  var busy = false;

  function say(msg, isError) {
    statusEl.textContent = msg;
    statusEl.className = isError ? 'sub error' : 'sub';
  }

  // b64 encodes a string's UTF-8 bytes, as tus metadata values are.
  function b64(s) {
    var bytes = new TextEncoder().encode(s);
    var bin = '';
    for (var i = 0; i < bytes.length; i++) { bin += String.fromCharCode(bytes[i]); }
    return btoa(bin);
  }

  function formatBytes(n) {
    if (n < 1024) { return n + ' B'; }
    var units = 'KMGTPE';
    var i = -1;
    do { n /= 1024; i++; } while (n >= 1024 && i < units.length - 1);
    return n.toFixed(1) + ' ' + units[i] + 'iB';
  }

  function sleep(ms) { return new Promise(function (resolve) { setTimeout(resolve, ms); }); }

  // send makes one HTTP request. It resolves with the XMLHttpRequest for
  // any HTTP answer and rejects (a network error) when there is none.
  function send(method, url, headers, body, onProgress) {
    return new Promise(function (resolve, reject) {
      var xhr = new XMLHttpRequest();
      xhr.open(method, url);
      xhr.setRequestHeader('Tus-Resumable', TUS);
      if (csrf) { xhr.setRequestHeader('X-CSRF-Token', csrf); }
      Object.keys(headers || {}).forEach(function (k) { xhr.setRequestHeader(k, headers[k]); });
      if (onProgress && xhr.upload) {
        xhr.upload.onprogress = function (e) { onProgress(e.loaded); };
      }
      xhr.onload = function () { resolve(xhr); };
      xhr.onerror = function () { reject(new Error('network error')); };
      xhr.ontimeout = function () { reject(new Error('timed out')); };
      xhr.onabort = function () { reject(new Error('aborted')); };
      xhr.send(body || null);
    });
  }

  // refusal is the message of an error answer: the JSON error's message,
  // or the body as text.
  function refusal(xhr) {
    var text = xhr.responseText || '';
    try {
      var body = JSON.parse(text);
      if (body && body.error && body.error.message) { return body.error.message; }
    } catch (e) { /* not JSON */ }
    return text.trim() || ('the server answered ' + xhr.status + ' ' + xhr.statusText);
  }

  // retryable answers are worth another try after a pause: the server or
  // a proxy failed, the upload is locked by a request still finishing, or
  // the offset moved (409: ask again where it is).
  function retryable(status) { return status >= 500 || status === 423 || status === 409 || status === 408; }

  // setStatus records a row's state for the page and for tests:
  // data-status is waiting, uploading, retrying, done, failed or
  // incomplete; data-done is true once the file is whole on the server.
  function setStatus(row, status) {
    row.dataset.status = status;
    row.dataset.done = status === 'done' ? 'true' : 'false';
  }

  function rowFor(path) {
    var rows = tbody.querySelectorAll('tr.upload-row');
    for (var i = 0; i < rows.length; i++) {
      if (rows[i].dataset.path === path) { return rows[i]; }
    }
    return null;
  }

  function newRow(path, size) {
    var tr = document.createElement('tr');
    tr.className = 'upload-row';
    tr.dataset.path = path;
    tr.dataset.size = String(size);
    setStatus(tr, 'waiting');
    var name = document.createElement('td');
    name.className = 'path';
    name.textContent = path;
    var sz = document.createElement('td');
    sz.className = 'num';
    sz.textContent = formatBytes(size);
    var prog = document.createElement('td');
    var bar = document.createElement('progress');
    bar.className = 'progress';
    bar.max = size || 1;
    bar.value = 0;
    var state = document.createElement('span');
    state.className = 'upload-state';
    state.textContent = 'waiting';
    prog.appendChild(bar);
    prog.appendChild(document.createTextNode(' '));
    prog.appendChild(state);
    var actions = document.createElement('td');
    tr.appendChild(name);
    tr.appendChild(sz);
    tr.appendChild(prog);
    tr.appendChild(actions);
    tbody.appendChild(tr);
    return tr;
  }

  function show(row, done, size, text) {
    var bar = row.querySelector('progress');
    bar.max = size || 1;
    bar.value = size ? done : (text === 'uploaded' ? 1 : 0);
    row.querySelector('.upload-state').textContent = text ||
      (size ? Math.floor(done * 100 / size) + '% (' + formatBytes(done) + ' of ' + formatBytes(size) + ')' : '');
  }

  function addRemoveButton(row, uploadID) {
    var cell = row.lastElementChild;
    cell.textContent = '';
    var b = document.createElement('button');
    b.type = 'button';
    b.className = 'remove link';
    b.dataset.uploadId = uploadID;
    b.textContent = 'Remove';
    cell.appendChild(b);
  }

  function uploadIDOf(url) {
    var parts = new URL(url, location.href).pathname.split('/');
    return parts[parts.length - 1];
  }

  function updateConfirm() {
    var rows = tbody.querySelectorAll('tr.upload-row');
    var allDone = rows.length > 0;
    for (var i = 0; i < rows.length; i++) {
      if (rows[i].dataset.done !== 'true') { allDone = false; }
    }
    confirmBtn.disabled = busy || queue.length > 0 || !allDone;
  }

  // create starts a tus upload of file under path and returns its URL.
  function create(file, path) {
    return send('POST', endpoint, {
      'Upload-Length': String(file.size),
      'Upload-Metadata': 'request ' + b64(requestID) + ',filename ' + b64(path)
    }).then(function (xhr) {
      if (xhr.status !== 201) { throw new Error(refusal(xhr)); }
      var loc = xhr.getResponseHeader('Location');
      if (!loc) { throw new Error('the server created the upload but did not say where it is (no Location)'); }
      return new URL(loc, endpoint).href;
    });
  }

  // offsetOf asks the server how many bytes of the upload it holds.
  function offsetOf(url) {
    return send('HEAD', url, { 'Cache-Control': 'no-store' }).then(function (xhr) {
      if (xhr.status !== 200 && xhr.status !== 204) {
        var err = new Error(xhr.status === 404 ? 'the upload is gone from the server: remove it and choose the file again' : 'the server answered ' + xhr.status + ' when asked how far the upload got');
        err.status = xhr.status;
        throw err;
      }
      return parseInt(xhr.getResponseHeader('Upload-Offset'), 10);
    });
  }

  // transfer sends file from offset to its end in CHUNK slices. After a
  // network error or a retryable answer it waits (1 s, 2 s, 4 s, ... up to
  // 30 s), asks the server for its offset and goes on from there.
  function transfer(url, file, offset, row) {
    var attempts = 0;
    function step(off) {
      show(row, off, file.size);
      if (off >= file.size) { return Promise.resolve(); }
      var end = Math.min(off + CHUNK, file.size);
      return send('PATCH', url, {
        'Upload-Offset': String(off),
        'Content-Type': 'application/offset+octet-stream'
      }, file.slice(off, end), function (loaded) {
        show(row, off + loaded, file.size);
      }).then(function (xhr) {
        if (xhr.status === 204) {
          attempts = 0;
          return step(parseInt(xhr.getResponseHeader('Upload-Offset'), 10));
        }
        if (!retryable(xhr.status)) { throw new Error(refusal(xhr)); }
        return retry(refusal(xhr));
      }, function (err) {
        return retry(err.message);
      });
    }
    function retry(why) {
      attempts++;
      if (attempts > MAX_RETRIES) {
        throw new Error('gave up after ' + MAX_RETRIES + ' attempts (' + why + '): choose the file again to resume');
      }
      var delay = Math.min(30000, 1000 * Math.pow(2, attempts - 1));
      setStatus(row, 'retrying');
      row.querySelector('.upload-state').textContent = 'connection problem (' + why + '); retrying in ' + Math.round(delay / 1000) + ' s';
      return sleep(delay).then(function () {
        return offsetOf(url).then(function (off) {
          setStatus(row, 'uploading');
          return step(off);
        }, function (err) {
          if (err.status && !retryable(err.status)) { throw err; }
          return retry(err.message);
        });
      });
    }
    return step(offset);
  }

  // uploadOne sends one chosen file: resuming an unfinished upload of the
  // same name and size, else creating a new one.
  function uploadOne(file) {
    var path = file.webkitRelativePath || file.name;
    var row = rowFor(path);
    if (row && row.dataset.done === 'true') {
      say(path + ' is already uploaded: remove it first to upload it again.', true);
      return Promise.resolve();
    }
    if (maxFileSize > 0 && file.size > maxFileSize) {
      say(path + ' is ' + formatBytes(file.size) + ', more than the ' + formatBytes(maxFileSize) + ' a file may hold.', true);
      return Promise.resolve();
    }
    var resumeID = row && row.dataset.uploadId && row.dataset.size === String(file.size) ? row.dataset.uploadId : '';
    if (!row) { row = newRow(path, file.size); }
    var start = resumeID
      ? offsetOf(endpoint + resumeID).then(function (off) { return { url: endpoint + resumeID, offset: off }; })
      : create(file, path).then(function (url) { return { url: url, offset: 0 }; });
    setStatus(row, 'uploading');
    return start.then(function (u) {
      row.dataset.uploadId = uploadIDOf(u.url);
      addRemoveButton(row, row.dataset.uploadId);
      return transfer(u.url, file, u.offset, row);
    }).then(function () {
      setStatus(row, 'done');
      show(row, file.size, file.size, 'uploaded');
    }, function (err) {
      setStatus(row, 'failed');
      row.querySelector('.upload-state').textContent = 'failed: ' + err.message;
      row.classList.add('failed');
      if (!row.dataset.uploadId) { row.parentNode.removeChild(row); }
      say(path + ': ' + err.message, true);
    });
  }

  function drain() {
    if (busy) { return; }
    var file = queue.shift();
    if (!file) {
      updateConfirm();
      return;
    }
    busy = true;
    updateConfirm();
    say('Uploading ' + (file.webkitRelativePath || file.name) + '…');
    uploadOne(file).then(function () {
      busy = false;
      if (queue.length === 0 && !statusEl.classList.contains('error')) { say('Every chosen file is uploaded. Choose more, or confirm the upload.'); }
      drain();
    });
  }

  input.addEventListener('change', function () {
    say('');
    for (var i = 0; i < input.files.length; i++) { queue.push(input.files[i]); }
    input.value = '';
    drain();
  });

  tbody.addEventListener('click', function (e) {
    var b = e.target.closest('button.remove');
    if (!b || busy) { return; }
    var row = b.closest('tr');
    send('DELETE', endpoint + b.dataset.uploadId).then(function (xhr) {
      if (xhr.status !== 204 && xhr.status !== 404) { throw new Error(refusal(xhr)); }
      row.parentNode.removeChild(row);
      say('Removed ' + row.dataset.path + '.');
      updateConfirm();
    }).catch(function (err) { say('Could not remove ' + row.dataset.path + ': ' + err.message, true); });
  });

  confirmBtn.addEventListener('click', function () {
    confirmBtn.disabled = true;
    say('Confirming…');
    fetch(root.dataset.confirm, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf },
      body: '{}'
    }).then(function (res) {
      return res.text().then(function (text) {
        if (res.ok) {
          say('Confirmed: Airlock is checking the files.');
          location.href = root.dataset.next;
          return;
        }
        var msg = text;
        try { msg = JSON.parse(text).error.message; } catch (e) { /* not JSON */ }
        throw new Error(msg || ('the server answered ' + res.status));
      });
    }).catch(function (err) {
      say('Not confirmed: ' + err.message, true);
      updateConfirm();
    });
  });

  updateConfirm();
}());
