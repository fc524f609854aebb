-- An issue's events as (tag key, tag value) pairs: the SDK's tags (which already carry
-- level, release, environment, browser, os and device when the SDK left them out) plus the
-- page URL without its query string.
select
    organization_id,
    project_id,
    issue_id,
    event_id,
    timestamp,
    processed_at,
    tag.1 as tag_key,
    tag.2 as tag_value
from {{ ref('stg_pulsetrace__events') }}
array join arrayConcat(
    arrayZip(tag_keys, tag_values),
    if(url != '' and not has(tag_keys, 'url'), [('url', cutQueryStringAndFragment(url))], [])
) as tag
where issue_id != 0 and tag.2 != ''
