{#
  An API endpoint as people read it: no scheme, host, query string or fragment, and the parts
  of the path that identify one record (numbers, UUIDs, long hex ids) replaced by a
  placeholder, so `/api/orders/1234?x=1` and `/api/orders/98` are one endpoint,
  `/api/orders/{id}`.
#}
{% macro normalize_endpoint(url) -%}
    {#- the id pass runs twice: a match eats the slash after it, so /1/2 needs a second pass #}
    replaceRegexpAll(replaceRegexpAll(
        replaceRegexpAll(
            replaceRegexpAll(
                replaceRegexpOne(cutQueryStringAndFragment({{ url }}), '^[A-Za-z][A-Za-z0-9+.-]*://[^/]*', ''),
                '/[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}(/|$)', '/{uuid}\\1'),
            '/[0-9a-fA-F]{16,}(/|$)', '/{hash}\\1'),
        '/[0-9]+(/|$)', '/{id}\\1'),
        '/[0-9]+(/|$)', '/{id}\\1')
{%- endmacro %}

{# The host part of a URL, empty for a relative one. #}
{% macro endpoint_host(url) -%}
    domain({{ url }})
{%- endmacro %}
