/**
 * The sample's one page: two forms whose results appear when the backend's reply arrives. The
 * script only calls the JSON API, so the same flow works from curl.
 */
export const page = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Tidings web callback</title>
<style>
  body { font-family: system-ui, sans-serif; max-width: 40rem; margin: 2rem auto; padding: 0 1rem; }
  form { display: flex; gap: .5rem; align-items: end; margin: 1rem 0 .25rem; }
  output { font-weight: bold; }
  .error { color: #b00020; }
</style>
</head>
<body>
<h1>Web callback</h1>
<p>Each form sends a command over the bus; the HTTP request is answered when the backend's reply arrives.</p>

<h2>Return code</h2>
<form id="process-form">
  <label>Order id <input id="process-id" name="id" type="number" min="1" value="1" required></label>
  <button type="submit">Process order</button>
</form>
<p>Result: <output id="process-result">none yet</output></p>

<h2>Message</h2>
<form id="describe-form">
  <label>Order id <input id="describe-id" name="id" type="number" min="1" value="1" required></label>
  <button type="submit">Describe order</button>
</form>
<p>Description: <output id="describe-result">none yet</output></p>

<script>
  async function call(path, id) {
    const response = await fetch(path, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ id: Number(id) }),
    });
    const body = await response.json();
    if (!response.ok) throw new Error(body.message || response.statusText);
    return body;
  }
  function wire(form, input, output, path, show) {
    document.getElementById(form).addEventListener('submit', async (event) => {
      event.preventDefault();
      const target = document.getElementById(output);
      target.className = '';
      target.textContent = 'waiting for the reply…';
      try {
        target.textContent = show(await call(path, document.getElementById(input).value));
      } catch (error) {
        target.className = 'error';
        target.textContent = 'failed: ' + error.message;
      }
    });
  }
  wire('process-form', 'process-id', 'process-result', '/api/process',
    (body) => 'order ' + body.id + ': ' + body.result + ' (code ' + body.code + ')');
  wire('describe-form', 'describe-id', 'describe-result', '/api/describe', (body) => body.text);
</script>
</body>
</html>
`;
