// Runs before first paint (a classic script in <head>) so the page never
// flashes the wrong theme. An explicit choice lives in localStorage under
// "sy-theme"; without one the system preference decides, and follows it live.
(function () {
  var media = window.matchMedia('(prefers-color-scheme: dark)');
  function stored() {
    try { return localStorage.getItem('sy-theme'); } catch (e) { return null; }
  }
  function apply() {
    var t = stored();
    if (t !== 'light' && t !== 'dark') t = media.matches ? 'dark' : 'light';
    document.documentElement.setAttribute('data-theme', t);
  }
  apply();
  media.addEventListener('change', apply);
  window.addEventListener('storage', apply);
  window.syTheme = {
    current: function () { return document.documentElement.getAttribute('data-theme'); },
    set: function (t) {
      try { localStorage.setItem('sy-theme', t); } catch (e) { /* private mode: this page only */ }
      document.documentElement.setAttribute('data-theme', t);
    }
  };
})();
