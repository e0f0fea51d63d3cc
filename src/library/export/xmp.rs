//! XMP sidecars: a new packet, or an existing one merged so that only evatag's own keywords
//! change.
//!
//! Keywords go in as `dc:subject` and, under [`KEYWORD_ROOT`], as `lr:hierarchicalSubject`: the
//! fields digiKam, darktable and Lightroom read. Every byte outside those two bags is copied
//! unchanged, and inside them only the keywords evatag wrote before give way to the new ones.
//! A sidecar that is not XMP is refused.

use std::collections::HashSet;

use quick_xml::escape::{partial_escape, resolve_predefined_entity};
use quick_xml::events::{BytesEnd, BytesStart, BytesText, Event};
use quick_xml::name::{Namespace, NamespaceResolver, PrefixDeclaration, QName, ResolveResult};
use quick_xml::{NsReader, Writer};

use super::KEYWORD_ROOT;

const RDF_NS: &str = "http://www.w3.org/1999/02/22-rdf-syntax-ns#";
const DC_NS: &str = "http://purl.org/dc/elements/1.1/";
const LR_NS: &str = "http://ns.adobe.com/lightroom/1.0/";
const BYTE_ORDER_MARK: char = '\u{feff}';

/// A sidecar's contents with `keywords` as evatag's: `existing` merged, or a new packet.
/// The error says why an existing sidecar cannot be merged.
pub fn sidecar_contents(existing: Option<&[u8]>, keywords: &[String]) -> Result<Vec<u8>, String> {
    match existing {
        Some(bytes) => {
            let xml = std::str::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_owned())?;
            if xml.chars().any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r') && c < ' ') {
                return Err("it contains control characters, which XML does not allow".to_owned());
            }
            merge(xml, keywords)
        }
        None => merge(&new_packet(), keywords),
    }
}

/// An XMP packet with one empty description that declares `dc` and `lr`.
fn new_packet() -> String {
    format!(
        "<?xpacket begin=\"{BYTE_ORDER_MARK}\" id=\"W5M0MpCehiHzreSzNTczkc9d\"?>\n\
         <x:xmpmeta xmlns:x=\"adobe:ns:meta/\" x:xmptk=\"evatag {}\">\n \
         <rdf:RDF xmlns:rdf=\"{RDF_NS}\">\n  \
         <rdf:Description rdf:about=\"\"\n    xmlns:dc=\"{DC_NS}\"\n    xmlns:lr=\"{LR_NS}\">\n  \
         </rdf:Description>\n \
         </rdf:RDF>\n\
         </x:xmpmeta>\n\
         <?xpacket end=\"w\"?>\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// The two keyword properties evatag writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    /// `dc:subject`: flat keywords.
    Subject,
    /// `lr:hierarchicalSubject`: `|`-separated keyword paths.
    Hierarchy,
}

impl Field {
    fn name(self) -> &'static str {
        match self {
            Self::Subject => "dc:subject",
            Self::Hierarchy => "lr:hierarchicalSubject",
        }
    }
}

/// What an element is, as far as merging keywords goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `rdf:Description`.
    Description,
    /// A keyword property of a description.
    Property(Field),
    /// The `rdf:Bag` or `rdf:Seq` of a keyword property.
    Container(Field),
    /// An `rdf:li` of that container.
    Item(Field),
    /// Anything else.
    Other,
}

fn classify(namespace: &ResolveResult<'_>, local: &str, parent: Option<Kind>) -> Kind {
    let namespace = match namespace {
        ResolveResult::Bound(Namespace(ns)) => *ns,
        _ => "",
    };
    match (parent, namespace, local) {
        (_, RDF_NS, "Description") => Kind::Description,
        (Some(Kind::Description), DC_NS, "subject") => Kind::Property(Field::Subject),
        (Some(Kind::Description), LR_NS, "hierarchicalSubject") => Kind::Property(Field::Hierarchy),
        (Some(Kind::Property(field)), RDF_NS, "Bag" | "Seq") => Kind::Container(field),
        (Some(Kind::Container(field)), RDF_NS, "li") => Kind::Item(field),
        _ => Kind::Other,
    }
}

/// Reads XMP event by event, knowing what each element is by its namespace.
struct Walker<'a> {
    reader: NsReader<&'a [u8]>,
    stack: Vec<Kind>,
    root_seen: bool,
}

impl<'a> Walker<'a> {
    fn new(xml: &'a str) -> Self {
        Self { reader: NsReader::from_str(xml), stack: Vec::new(), root_seen: false }
    }

    /// How many elements are open.
    fn depth(&self) -> usize {
        self.stack.len()
    }

    /// The next event with the kind of the element it opens or closes, or, for anything else,
    /// of the element it is in; `None` at the end of a well-formed document.
    fn next(&mut self) -> Result<Option<(Kind, Event<'a>)>, String> {
        let (namespace, event) = match self.reader.read_resolved_event() {
            Ok(read) => read,
            Err(e) => return Err(format!("{e} at byte {}", self.reader.error_position())),
        };
        if let Event::Start(e) | Event::Empty(e) = &event
            && let Some(Err(bad)) = e.attributes().find(Result::is_err)
        {
            return Err(format!("a malformed attribute ({bad}) at byte {}", self.reader.buffer_position()));
        }
        if let ResolveResult::Unknown(prefix) = &namespace {
            return Err(format!("the prefix {} is not declared", String::from_utf8_lossy(prefix.as_ref())));
        }
        if self.stack.is_empty() {
            // One root element, and nothing but markup and blanks around it.
            match &event {
                Event::Start(_) | Event::Empty(_) if std::mem::replace(&mut self.root_seen, true) => {
                    return Err("it has more than one root element".to_owned());
                }
                Event::Text(t) if !is_blank(&t.xml10_content()) => {
                    return Err("it has text outside its root element".to_owned());
                }
                Event::CData(_) | Event::GeneralRef(_) => return Err("it has text outside its root element".to_owned()),
                _ => {}
            }
        }
        let parent = self.stack.last().copied();
        let kind = match &event {
            Event::Start(e) | Event::Empty(e) => classify(&namespace, e.local_name().into_inner(), parent),
            Event::End(_) => self.stack.pop().unwrap_or(Kind::Other),
            Event::Eof if self.stack.is_empty() => return Ok(None),
            Event::Eof => return Err("it ends inside an element".to_owned()),
            _ => parent.unwrap_or(Kind::Other),
        };
        if let Event::Start(_) = event {
            self.stack.push(kind);
        }
        Ok(Some((kind, event)))
    }
}

/// Appends the character data of `event` to `text`.
fn push_text(text: &mut String, event: &Event<'_>) -> Result<(), String> {
    match event {
        Event::Text(t) => text.push_str(&t.xml10_content()),
        Event::CData(t) => text.push_str(&t.xml10_content()),
        Event::GeneralRef(r) => match r.resolve_char_ref().map_err(|e| e.to_string())? {
            Some(c) => text.push(c),
            None => text.push_str(resolve_predefined_entity(r).ok_or_else(|| format!("unknown entity &{};", &**r))?),
        },
        _ => {}
    }
    Ok(())
}

/// What a first reading of a sidecar finds.
#[derive(Debug, Default)]
struct Survey {
    descriptions: usize,
    has_subject: bool,
    has_hierarchy: bool,
    /// Every `lr:hierarchicalSubject` entry.
    hierarchy: Vec<String>,
}

/// Reads a whole packet, checking that it is XMP whose keywords can be merged.
fn survey(xml: &str) -> Result<Survey, String> {
    let mut walker = Walker::new(xml);
    let mut survey = Survey::default();
    let mut property_has_bag = false;
    let mut entry: Option<String> = None;
    while let Some((kind, event)) = walker.next()? {
        match (kind, &event) {
            (Kind::Description, Event::Start(_) | Event::Empty(_)) => survey.descriptions += 1,
            (Kind::Property(field), Event::Start(_)) => {
                match field {
                    Field::Subject => survey.has_subject = true,
                    Field::Hierarchy => survey.has_hierarchy = true,
                }
                property_has_bag = false;
            }
            (Kind::Property(field), Event::Empty(_)) => return Err(format!("{} is empty", field.name())),
            (Kind::Property(field), Event::End(_)) if !property_has_bag => {
                return Err(format!("{} holds no rdf:Bag", field.name()));
            }
            (Kind::Container(_), Event::Start(_) | Event::Empty(_)) => property_has_bag = true,
            (Kind::Item(Field::Hierarchy), Event::Start(_)) => entry = Some(String::new()),
            (Kind::Item(Field::Hierarchy), Event::Empty(_)) => survey.hierarchy.push(String::new()),
            (Kind::Item(Field::Hierarchy), Event::End(_)) => survey.hierarchy.extend(entry.take()),
            (_, event) => {
                if let Some(text) = &mut entry {
                    push_text(text, event)?;
                }
            }
        }
    }
    if survey.descriptions == 0 {
        return Err("it has no rdf:Description".to_owned());
    }
    Ok(survey)
}

/// The keyword of a hierarchical entry evatag wrote (`evatag|tabby` → `tabby`).
fn own_keyword(entry: &str) -> Option<&str> {
    entry.strip_prefix(KEYWORD_ROOT)?.strip_prefix('|')
}

/// What a merge changes.
#[derive(Debug)]
struct Plan {
    /// The keywords to write, best first.
    keywords: Vec<String>,
    /// `dc:subject` entries an earlier export wrote, to remove.
    stale: HashSet<String>,
    /// Whether `dc:subject` is missing and must be added to the first description.
    add_subject: bool,
    /// Whether `lr:hierarchicalSubject` is missing and must be added to the first description.
    add_hierarchy: bool,
}

impl Plan {
    /// A plan for `keywords`. An earlier keyword that the user's own hierarchy also ends in
    /// (`places|beach` for `beach`) is the user's too, and stays.
    fn new(survey: Survey, keywords: &[String]) -> Self {
        let (own, users): (Vec<&String>, Vec<&String>) =
            survey.hierarchy.iter().partition(|entry| own_keyword(entry).is_some());
        let leaves: HashSet<&str> = users.iter().filter_map(|entry| entry.rsplit('|').next()).collect();
        let stale = own
            .iter()
            .filter_map(|entry| own_keyword(entry))
            .filter(|k| !leaves.contains(k))
            .map(str::to_owned)
            .collect();
        let add = !keywords.is_empty();
        Self {
            keywords: keywords.to_vec(),
            stale,
            add_subject: add && !survey.has_subject,
            add_hierarchy: add && !survey.has_hierarchy,
        }
    }

    /// Whether an existing entry of `field` stays.
    fn keeps(&self, field: Field, entry: &str) -> bool {
        match field {
            Field::Subject => !self.stale.contains(entry),
            Field::Hierarchy => own_keyword(entry).is_none(),
        }
    }

    /// The entries to add to `field`, which already holds `kept`.
    fn additions(&self, field: Field, kept: &HashSet<String>) -> Vec<String> {
        match field {
            Field::Subject => self.keywords.iter().filter(|k| !kept.contains(*k)).cloned().collect(),
            Field::Hierarchy => self.keywords.iter().map(|k| format!("{KEYWORD_ROOT}|{k}")).collect(),
        }
    }
}

/// Merges `keywords` into the XMP packet `xml`.
fn merge(xml: &str, keywords: &[String]) -> Result<Vec<u8>, String> {
    let body = xml.strip_prefix(BYTE_ORDER_MARK).unwrap_or(xml);
    let plan = Plan::new(survey(body)?, keywords);
    let mut merger = Merger::new(&plan);
    if body.len() != xml.len() {
        merger.write_text(&BYTE_ORDER_MARK.to_string());
    }
    let mut walker = Walker::new(body);
    while let Some((kind, event)) = walker.next()? {
        merger.handle(kind, event, &walker)?;
    }
    Ok(merger.finish())
}

/// An `rdf:li` being read, with the whitespace before it.
struct Entry<'a> {
    indent: Option<BytesText<'a>>,
    events: Vec<Event<'a>>,
    text: String,
}

/// A keyword bag being copied.
struct OpenBag<'a> {
    field: Field,
    /// The name its items take, `rdf:li` with the bag's prefix.
    li: String,
    /// The entries kept so far.
    kept: HashSet<String>,
    /// The whitespace before its last item.
    indent: Option<String>,
    entry: Option<Entry<'a>>,
}

/// The names of what goes into the first description.
struct Names {
    bag: String,
    li: String,
    subject: String,
    hierarchy: String,
}

/// Where a merge stands with the first description.
enum First {
    Ahead,
    /// Inside it, at this depth.
    Inside(usize, Names),
    Passed,
}

/// Copies a packet event by event, rewriting the keyword bags.
struct Merger<'a, 'p> {
    plan: &'p Plan,
    out: Writer<Vec<u8>>,
    /// Whitespace read but not yet written: where it goes depends on what follows.
    held: Option<BytesText<'a>>,
    bag: Option<OpenBag<'a>>,
    first: First,
}

fn put(out: &mut Writer<Vec<u8>>, event: Event<'_>) {
    out.write_event(event).expect("writing to memory cannot fail");
}

fn qualify(prefix: Option<&str>, local: &str) -> String {
    prefix.map_or_else(|| local.to_owned(), |p| format!("{p}:{local}"))
}

/// Indentation one step deeper than `indent`, or none where the packet has none.
fn deeper(indent: &str) -> String {
    if indent.is_empty() { String::new() } else { format!("{indent} ") }
}

fn is_blank(text: &str) -> bool {
    text.chars().all(|c| matches!(c, ' ' | '\t' | '\n' | '\r'))
}

/// A prefix for namespace `ns` where the reader stands: one bound to it already, or else the
/// first free one of `preferred`, `preferred1`, ..., with `true` to say it must be declared.
fn prefix_for(resolver: &NamespaceResolver, ns: &str, preferred: &str) -> (String, bool) {
    let binds_ns = |prefix: &str| match resolver.resolve_element(QName(&format!("{prefix}:x"))).0 {
        ResolveResult::Bound(Namespace(bound)) => Some(bound == ns),
        _ => None,
    };
    let bound = resolver.bindings().find_map(|(declaration, _)| match declaration {
        PrefixDeclaration::Named(prefix) if binds_ns(prefix) == Some(true) => Some(prefix.to_owned()),
        _ => None,
    });
    match bound {
        Some(prefix) => (prefix, false),
        None => {
            let free = (0..)
                .map(|i| if i == 0 { preferred.to_owned() } else { format!("{preferred}{i}") })
                .find(|p| binds_ns(p).is_none())
                .expect("a free prefix exists");
            (free, true)
        }
    }
}

impl<'a, 'p> Merger<'a, 'p> {
    fn new(plan: &'p Plan) -> Self {
        Self { plan, out: Writer::new(Vec::new()), held: None, bag: None, first: First::Ahead }
    }

    fn handle(&mut self, kind: Kind, event: Event<'a>, walker: &Walker<'a>) -> Result<(), String> {
        if let Some(entry) = self.bag.as_mut().and_then(|b| b.entry.as_mut()) {
            push_text(&mut entry.text, &event)?;
            let done = matches!((kind, &event), (Kind::Item(_), Event::End(_)));
            entry.events.push(event);
            if done {
                self.finish_entry();
            }
            return Ok(());
        }
        match event {
            Event::Text(text) if is_blank(&text) => {
                self.flush();
                self.held = Some(text);
            }
            Event::Start(start) => self.open(kind, start, walker),
            Event::Empty(start) => self.open_empty(kind, start, walker),
            Event::End(end) => self.close(kind, end, walker),
            event => self.emit(event),
        }
        Ok(())
    }

    /// The merged packet.
    fn finish(mut self) -> Vec<u8> {
        self.flush();
        self.out.into_inner()
    }

    fn flush(&mut self) {
        if let Some(text) = self.held.take() {
            put(&mut self.out, Event::Text(text));
        }
    }

    /// Writes `event` after any held whitespace.
    fn emit(&mut self, event: Event<'_>) {
        self.flush();
        put(&mut self.out, event);
    }

    fn write_text(&mut self, text: &str) {
        put(&mut self.out, Event::Text(BytesText::from_escaped(text)));
    }

    fn held_text(&self) -> String {
        self.held.as_deref().unwrap_or_default().to_owned()
    }

    fn open(&mut self, kind: Kind, mut start: BytesStart<'a>, walker: &Walker<'a>) {
        match kind {
            Kind::Item(_) => return self.start_entry(Event::Start(start)),
            Kind::Container(field) => self.bag = Some(self.open_bag(field, &start)),
            Kind::Description if matches!(self.first, First::Ahead) => {
                self.first = First::Inside(walker.depth(), self.names(&mut start, walker));
            }
            _ => {}
        }
        self.emit(Event::Start(start));
    }

    fn open_empty(&mut self, kind: Kind, mut start: BytesStart<'a>, walker: &Walker<'a>) {
        match kind {
            Kind::Item(_) => {
                self.start_entry(Event::Empty(start));
                self.finish_entry();
            }
            Kind::Container(field) if !self.plan.keywords.is_empty() => {
                self.bag = Some(self.open_bag(field, &start));
                self.expand(start, Self::close_bag);
            }
            Kind::Description if matches!(self.first, First::Ahead) => {
                let names = self.names(&mut start, walker);
                if self.plan.add_subject || self.plan.add_hierarchy {
                    self.expand(start, |merger, end| merger.finish_description(&names, end));
                } else {
                    self.emit(Event::Empty(start));
                }
                self.first = First::Passed;
            }
            _ => self.emit(Event::Empty(start)),
        }
    }

    /// Writes a self-closing element as a start tag, then closes it with `close`, which sees
    /// the whitespace before the element as the whitespace before its end tag.
    fn expand(&mut self, start: BytesStart<'a>, close: impl FnOnce(&mut Self, BytesEnd<'a>)) {
        let outer = self.held.clone();
        let end = start.to_end().into_owned();
        self.emit(Event::Start(start));
        self.held = outer;
        close(self, end);
    }

    fn close(&mut self, kind: Kind, end: BytesEnd<'a>, walker: &Walker<'a>) {
        match kind {
            Kind::Container(_) => self.close_bag(end),
            Kind::Description => match std::mem::replace(&mut self.first, First::Passed) {
                First::Inside(depth, names) if depth == walker.depth() + 1 => self.finish_description(&names, end),
                first => {
                    self.first = first;
                    self.emit(Event::End(end));
                }
            },
            _ => self.emit(Event::End(end)),
        }
    }

    fn open_bag(&self, field: Field, start: &BytesStart<'_>) -> OpenBag<'a> {
        let li = qualify(start.name().prefix().map(|p| p.into_inner()), "li");
        OpenBag { field, li, kept: HashSet::new(), indent: None, entry: None }
    }

    /// Adds the new entries at the end of the open bag, then closes it.
    fn close_bag(&mut self, end: BytesEnd<'a>) {
        if let Some(bag) = self.bag.take() {
            let indent = bag.indent.unwrap_or_else(|| deeper(&self.held_text()));
            for entry in self.plan.additions(bag.field, &bag.kept) {
                self.write_text(&indent);
                self.write_li(&bag.li, &entry);
            }
        }
        self.emit(Event::End(end));
    }

    fn start_entry(&mut self, event: Event<'a>) {
        let indent = self.held.take();
        if let Some(bag) = &mut self.bag {
            bag.entry = Some(Entry { indent, events: vec![event], text: String::new() });
        }
    }

    /// Keeps the entry just read, with its indentation, or drops both.
    fn finish_entry(&mut self) {
        let Some(bag) = &mut self.bag else { return };
        let Some(entry) = bag.entry.take() else { return };
        if let Some(indent) = &entry.indent {
            bag.indent = Some(indent.to_string());
        }
        if self.plan.keeps(bag.field, &entry.text) {
            bag.kept.insert(entry.text);
            for event in entry.indent.map(Event::Text).into_iter().chain(entry.events) {
                put(&mut self.out, event);
            }
        }
    }

    /// The names of the first description's new content; declares on `start` the namespaces
    /// of the properties to add that are not declared yet.
    fn names(&self, start: &mut BytesStart<'_>, walker: &Walker<'a>) -> Names {
        let rdf = start.name().prefix().map(|p| p.into_inner().to_owned());
        let resolver = walker.reader.resolver();
        let mut name = |wanted: bool, ns: &str, preferred: &str, local: &str| {
            if !wanted {
                return String::new();
            }
            let (prefix, declare) = prefix_for(resolver, ns, preferred);
            if declare {
                start.push_attribute((format!("xmlns:{prefix}").as_str(), ns));
            }
            qualify(Some(&prefix), local)
        };
        Names {
            subject: name(self.plan.add_subject, DC_NS, "dc", "subject"),
            hierarchy: name(self.plan.add_hierarchy, LR_NS, "lr", "hierarchicalSubject"),
            bag: qualify(rdf.as_deref(), "Bag"),
            li: qualify(rdf.as_deref(), "li"),
        }
    }

    /// Adds the missing keyword properties at the end of the first description, then closes it.
    fn finish_description(&mut self, names: &Names, end: BytesEnd<'a>) {
        let indent = deeper(&self.held_text());
        if self.plan.add_subject {
            self.write_property(&indent, names, &names.subject, Field::Subject);
        }
        if self.plan.add_hierarchy {
            self.write_property(&indent, names, &names.hierarchy, Field::Hierarchy);
        }
        self.emit(Event::End(end));
    }

    fn write_property(&mut self, indent: &str, names: &Names, property: &str, field: Field) {
        let inner = deeper(indent);
        let item = deeper(&inner);
        self.write_text(indent);
        put(&mut self.out, Event::Start(BytesStart::new(property)));
        self.write_text(&inner);
        put(&mut self.out, Event::Start(BytesStart::new(names.bag.as_str())));
        for entry in self.plan.additions(field, &HashSet::new()) {
            self.write_text(&item);
            self.write_li(&names.li, &entry);
        }
        self.write_text(&inner);
        put(&mut self.out, Event::End(BytesEnd::new(names.bag.as_str())));
        self.write_text(indent);
        put(&mut self.out, Event::End(BytesEnd::new(property)));
    }

    fn write_li(&mut self, li: &str, text: &str) {
        put(&mut self.out, Event::Start(BytesStart::new(li)));
        put(&mut self.out, Event::Text(BytesText::from_escaped(partial_escape(text))));
        put(&mut self.out, Event::End(BytesEnd::new(li)));
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::library::export::tests::{label, photo_in, strings};
    use crate::library::export::{ExportError, SidecarNaming, write_xmp_sidecar};
    use crate::model::labels::Label;

    /// The `rdf:li` texts of `dc:subject` and of `lr:hierarchicalSubject`, read by plain
    /// prefixed names; the reader also checks that the document is well-formed.
    fn bags(xml: &str) -> (Vec<String>, Vec<String>) {
        let mut reader = quick_xml::Reader::from_str(xml);
        let (mut subject, mut hierarchy) = (Vec::new(), Vec::new());
        let mut field = None;
        let mut text: Option<String> = None;
        loop {
            match reader.read_event().expect("well-formed XML") {
                Event::Start(e) => match e.name().into_inner() {
                    "dc:subject" => field = Some(Field::Subject),
                    "lr:hierarchicalSubject" => field = Some(Field::Hierarchy),
                    "rdf:li" if field.is_some() => text = Some(String::new()),
                    _ => {}
                },
                Event::End(e) => match e.name().into_inner() {
                    "dc:subject" | "lr:hierarchicalSubject" => field = None,
                    "rdf:li" => match (field, text.take()) {
                        (Some(Field::Subject), Some(t)) => subject.push(t),
                        (Some(Field::Hierarchy), Some(t)) => hierarchy.push(t),
                        _ => {}
                    },
                    _ => {}
                },
                Event::Text(t) => text.iter_mut().for_each(|s| s.push_str(&t)),
                Event::GeneralRef(r) => {
                    text.iter_mut().for_each(|s| s.push_str(resolve_predefined_entity(&r).unwrap()))
                }
                Event::Eof => break,
                _ => {}
            }
        }
        (subject, hierarchy)
    }

    /// A sidecar as digiKam writes it: a rating, a date, its own tags, a title and keywords.
    const DIGIKAM: &str = include_str!("../../../tests/fixtures/digikam.xmp");

    #[test]
    fn a_new_sidecar_is_a_complete_packet_with_exactly_the_keywords() {
        let dir = tempfile::tempdir().unwrap();
        let photo = photo_in(dir.path(), "cat.photo.jpg");
        let labels = [
            label(281, "tabby, tabby cat", 0.5),
            label(1, "fish & chips", 0.3),
            label(739, "potter's wheel", 0.2),
            label(2, "great white shark", 0.01),
        ];
        let sidecar = write_xmp_sidecar(&photo, &labels, 0.1, SidecarNaming::Appended).unwrap();
        assert_eq!(sidecar, dir.path().join("cat.photo.jpg.xmp"));
        let xml = fs::read_to_string(&sidecar).unwrap();
        assert!(xml.starts_with("<?xpacket begin="), "{xml}");
        assert!(xml.ends_with("<?xpacket end=\"w\"?>\n"), "{xml}");
        assert!(xml.contains(&format!("x:xmptk=\"evatag {}\"", env!("CARGO_PKG_VERSION"))));
        assert!(xml.contains("<rdf:li>fish &amp; chips</rdf:li>"), "{xml}");
        let (subject, hierarchy) = bags(&xml);
        assert_eq!(subject, strings(&["tabby", "fish & chips", "potter's wheel"]));
        assert_eq!(hierarchy, strings(&["evatag|tabby", "evatag|fish & chips", "evatag|potter's wheel"]));

        write_xmp_sidecar(&photo, &labels, 0.1, SidecarNaming::Appended).unwrap();
        assert_eq!(fs::read_to_string(&sidecar).unwrap(), xml, "a second export changes nothing");
    }

    #[test]
    fn a_new_sidecar_without_keywords_is_still_written() {
        let dir = tempfile::tempdir().unwrap();
        let photo = photo_in(dir.path(), "a.jpg");
        let sidecar = write_xmp_sidecar(&photo, &[label(1, "x", 0.01)], 0.5, SidecarNaming::Replaced).unwrap();
        assert_eq!(sidecar, dir.path().join("a.xmp"));
        assert_eq!(bags(&fs::read_to_string(&sidecar).unwrap()), (vec![], vec![]));
    }

    #[test]
    fn a_digikam_sidecar_keeps_everything_but_evatags_old_keywords() {
        let dir = tempfile::tempdir().unwrap();
        let photo = photo_in(dir.path(), "beach.jpg");
        let sidecar = dir.path().join("beach.jpg.xmp");
        fs::write(&sidecar, DIGIKAM).unwrap();
        let export = |labels: &[Label], min_prob| {
            write_xmp_sidecar(&photo, labels, min_prob, SidecarNaming::Appended).unwrap();
            let xml = fs::read_to_string(&sidecar).unwrap();
            let (subject, hierarchy) = bags(&xml);
            (xml, subject, hierarchy)
        };

        let (xml, subject, hierarchy) =
            export(&[label(281, "tabby, tabby cat", 0.6), label(739, "potter's wheel", 0.3)], 0.1);
        assert_eq!(subject, strings(&["holiday", "beach", "tabby", "potter's wheel"]));
        assert_eq!(hierarchy, strings(&["places|beach", "evatag|tabby", "evatag|potter's wheel"]));
        for kept in [
            "xmp:Rating=\"3\">",
            "<!-- written by digiKam -->",
            "<exif:DateTimeOriginal>2023-07-14T10:31:02</exif:DateTimeOriginal>",
            "<rdf:li xml:lang=\"x-default\">Sunset &amp; sea</rdf:li>",
            "<rdf:Seq>\n     <rdf:li>places/beach</rdf:li>\n     <rdf:li>holiday</rdf:li>\n    </rdf:Seq>",
        ] {
            assert!(xml.contains(kept), "{kept} is gone from {xml}");
        }
        assert!(xml.contains("     <rdf:li>beach</rdf:li>\n     <rdf:li>tabby</rdf:li>\n"), "{xml}");

        // New labels replace evatag's old keywords; a keyword the user also has stays.
        let (xml, subject, hierarchy) = export(&[label(9, "beach", 0.7), label(1, "goldfish", 0.3)], 0.1);
        assert_eq!(subject, strings(&["holiday", "beach", "goldfish"]));
        assert_eq!(hierarchy, strings(&["places|beach", "evatag|beach", "evatag|goldfish"]));
        export(&[label(9, "beach", 0.7), label(1, "goldfish", 0.3)], 0.1);
        assert_eq!(fs::read_to_string(&sidecar).unwrap(), xml, "a second export changes nothing");

        let (_, subject, hierarchy) = export(&[label(281, "tabby", 0.9)], 0.1);
        assert_eq!(subject, strings(&["holiday", "beach", "tabby"]));
        assert_eq!(hierarchy, strings(&["places|beach", "evatag|tabby"]));

        // No keyword above the threshold: evatag's keywords go, and the rest is as it was.
        let (xml, _, _) = export(&[label(281, "tabby", 0.9)], 0.95);
        assert_eq!(xml, DIGIKAM);
    }

    #[test]
    fn a_self_closing_lightroom_description_gets_both_bags_and_their_namespaces() {
        let original = "<x:xmpmeta xmlns:x=\"adobe:ns:meta/\" x:xmptk=\"Adobe XMP Core 7.0-c000\">
 <rdf:RDF xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\">
  <rdf:Description rdf:about=\"\"
    xmlns:xmp=\"http://ns.adobe.com/xap/1.0/\"
    xmlns:crs=\"http://ns.adobe.com/camera-raw-settings/1.0/\"
   xmp:Rating=\"2\"
   crs:Exposure2012=\"+0.35\"/>
 </rdf:RDF>
</x:xmpmeta>
";
        let dir = tempfile::tempdir().unwrap();
        let photo = photo_in(dir.path(), "DSC_0042.NEF");
        let sidecar = dir.path().join("DSC_0042.xmp");
        fs::write(&sidecar, original).unwrap();
        let labels = [label(281, "tabby, tabby cat", 0.6)];
        write_xmp_sidecar(&photo, &labels, 0.1, SidecarNaming::Replaced).unwrap();
        let xml = fs::read_to_string(&sidecar).unwrap();
        assert_eq!(bags(&xml), (strings(&["tabby"]), strings(&["evatag|tabby"])));
        assert!(xml.contains("crs:Exposure2012=\"+0.35\""), "{xml}");
        assert!(xml.contains(&format!("xmlns:dc=\"{DC_NS}\"")), "{xml}");
        assert!(xml.contains(&format!("xmlns:lr=\"{LR_NS}\"")), "{xml}");
        assert!(xml.contains("</rdf:Description>\n </rdf:RDF>"), "{xml}");
        // Namespace-aware parsing finds the bags where XMP readers look for them.
        let survey = survey(&xml).unwrap();
        assert!(survey.has_subject && survey.has_hierarchy);

        write_xmp_sidecar(&photo, &labels, 0.1, SidecarNaming::Replaced).unwrap();
        assert_eq!(fs::read_to_string(&sidecar).unwrap(), xml, "a second export changes nothing");
    }

    #[test]
    fn keywords_are_found_by_namespace_in_any_description() {
        let original = "<x:xmpmeta xmlns:x=\"adobe:ns:meta/\">
 <rdf:RDF xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\">
  <rdf:Description rdf:about=\"\" xmlns:xmp=\"http://ns.adobe.com/xap/1.0/\" xmp:Rating=\"1\"/>
  <rdf:Description rdf:about=\"\" xmlns:purl=\"http://purl.org/dc/elements/1.1/\">
   <purl:subject><rdf:Bag><rdf:li>dog</rdf:li></rdf:Bag></purl:subject>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
";
        let dir = tempfile::tempdir().unwrap();
        let photo = photo_in(dir.path(), "dog.jpg");
        let sidecar = dir.path().join("dog.jpg.xmp");
        fs::write(&sidecar, original).unwrap();
        write_xmp_sidecar(&photo, &[label(281, "tabby", 0.6)], 0.1, SidecarNaming::Appended).unwrap();
        let xml = fs::read_to_string(&sidecar).unwrap();
        assert!(xml.contains("<purl:subject><rdf:Bag><rdf:li>dog</rdf:li><rdf:li>tabby</rdf:li></rdf:Bag>"), "{xml}");
        assert!(!xml.contains("dc:subject"), "{xml}");
        assert_eq!(bags(&xml).1, strings(&["evatag|tabby"]));
        assert!(xml.contains("xmp:Rating=\"1\" xmlns:lr="), "{xml}");
    }

    #[test]
    fn empty_bags_and_sequences_are_filled() {
        let original = "\u{feff}<rdf:RDF xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\">
 <rdf:Description xmlns:dc=\"http://purl.org/dc/elements/1.1/\" xmlns:lr=\"http://ns.adobe.com/lightroom/1.0/\">
  <dc:subject>
   <rdf:Bag/>
  </dc:subject>
  <lr:hierarchicalSubject>
   <rdf:Seq>
    <rdf:li/>
    <rdf:li>evatag|old</rdf:li>
   </rdf:Seq>
  </lr:hierarchicalSubject>
 </rdf:Description>
</rdf:RDF>
";
        let dir = tempfile::tempdir().unwrap();
        let photo = photo_in(dir.path(), "seq.jpg");
        let sidecar = dir.path().join("seq.jpg.xmp");
        fs::write(&sidecar, original).unwrap();
        write_xmp_sidecar(&photo, &[label(281, "tabby", 0.6)], 0.1, SidecarNaming::Appended).unwrap();
        let xml = fs::read_to_string(&sidecar).unwrap();
        assert!(xml.starts_with('\u{feff}'), "the byte order mark stays");
        assert!(xml.contains("<rdf:Bag>\n    <rdf:li>tabby</rdf:li>\n   </rdf:Bag>"), "{xml}");
        let (subject, hierarchy) = bags(&xml[3..]);
        assert_eq!(subject, strings(&["tabby"]));
        assert_eq!(hierarchy, strings(&["evatag|tabby"]));
        assert!(xml.contains("<rdf:Seq>\n    <rdf:li/>\n    <rdf:li>evatag|tabby</rdf:li>\n   </rdf:Seq>"), "{xml}");
    }

    #[test]
    fn a_prefix_taken_by_another_namespace_is_not_reused() {
        let original =
            "<rdf:RDF xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\" xmlns:dc=\"urn:not-dublin-core\">
 <rdf:Description dc:thing=\"1\"/>
</rdf:RDF>
";
        let dir = tempfile::tempdir().unwrap();
        let photo = photo_in(dir.path(), "p.jpg");
        let sidecar = dir.path().join("p.jpg.xmp");
        fs::write(&sidecar, original).unwrap();
        write_xmp_sidecar(&photo, &[label(281, "tabby", 0.6)], 0.1, SidecarNaming::Appended).unwrap();
        let xml = fs::read_to_string(&sidecar).unwrap();
        assert!(xml.contains(&format!("dc:thing=\"1\" xmlns:dc1=\"{DC_NS}\" xmlns:lr=\"{LR_NS}\">")), "{xml}");
        assert!(xml.contains("<dc1:subject>\n   <rdf:Bag>\n    <rdf:li>tabby</rdf:li>"), "{xml}");
        let survey = survey(&xml).unwrap();
        assert!(survey.has_subject && survey.has_hierarchy);
    }

    #[test]
    fn a_sidecar_that_is_not_xmp_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let photo = photo_in(dir.path(), "odd.jpg");
        let sidecar = dir.path().join("odd.jpg.xmp");
        let rdf = "xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\"";
        let dc = "xmlns:dc=\"http://purl.org/dc/elements/1.1/\"";
        let cases: Vec<Vec<u8>> = vec![
            b"Notes about this photo: shot at dusk, f/2.8 & 1/60s.".to_vec(),
            b"\xff\xfe\x00garbage\x80".to_vec(),
            b"<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF".to_vec(),
            format!("<rdf:RDF {rdf}><rdf:Description rdf:about=''></rdf:RDF>").into_bytes(),
            b"<html><body><p>hello</p></body></html>".to_vec(),
            format!("<rdf:RDF {rdf}><rdf:Description {dc}><dc:subject>cat</dc:subject></rdf:Description></rdf:RDF>")
                .into_bytes(),
        ];
        for bytes in cases {
            fs::write(&sidecar, &bytes).unwrap();
            let error = write_xmp_sidecar(&photo, &[label(281, "tabby", 0.6)], 0.1, SidecarNaming::Appended);
            match error {
                Err(e @ ExportError::Xml { .. }) => assert!(e.to_string().contains("odd.jpg.xmp"), "{e}"),
                other => panic!("{:?} for {}", other, String::from_utf8_lossy(&bytes)),
            }
            assert_eq!(fs::read(&sidecar).unwrap(), bytes);
        }
    }

    #[test]
    fn the_photo_is_never_touched() {
        let dir = tempfile::tempdir().unwrap();
        let photo = photo_in(dir.path(), "keep.jpg");
        let past = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_500_000_000);
        fs::File::options().write(true).open(&photo).unwrap().set_modified(past).unwrap();
        let before = (fs::read(&photo).unwrap(), fs::metadata(&photo).unwrap().modified().unwrap());
        for naming in [SidecarNaming::Appended, SidecarNaming::Replaced] {
            write_xmp_sidecar(&photo, &[label(281, "tabby", 0.6)], 0.1, naming).unwrap();
        }
        let after = (fs::read(&photo).unwrap(), fs::metadata(&photo).unwrap().modified().unwrap());
        assert_eq!(before, after);
        assert_eq!(after.1, past);
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[cfg(unix)]
    #[test]
    fn a_merged_sidecar_keeps_its_permissions() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let photo = photo_in(dir.path(), "shared.jpg");
        let sidecar = dir.path().join("shared.jpg.xmp");
        fs::write(&sidecar, DIGIKAM).unwrap();
        fs::set_permissions(&sidecar, fs::Permissions::from_mode(0o640)).unwrap();
        write_xmp_sidecar(&photo, &[label(281, "tabby", 0.6)], 0.1, SidecarNaming::Appended).unwrap();
        assert_eq!(fs::metadata(&sidecar).unwrap().permissions().mode() & 0o777, 0o640);
    }
}
